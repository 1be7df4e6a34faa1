"""Saliency models: where people look in an image, as maps that weight distortion or bits.

    from jaxcomp.saliency import sdsp
    maps = sdsp(images)   # [B, H, W, 3] RGB in [0, 1] -> [B, H, W] in [0, 1]

`sdsp`: the classical SDSP model (frequency, colour and location priors; Zhang et al. 2013),
the saliency of VSI and the default saliency model for saliency-weighted compression.
"""

from jaxcomp.saliency.sdsp import sdsp

__all__ = ["sdsp"]
