"""Shared building blocks (layer 1): the Flax VGG16 backbone (vgg16), the pretrained-weight store
(weights: `jaxcomp weights fetch/list`, safetensors cache) and the array ops that metrics and
saliency models are built of (imageops: pair checks, safe sqrt/pow, luma, separable correlation,
pooling, weighted means). Imports nothing of jaxcomp above `errors` and `fileio`.
"""
