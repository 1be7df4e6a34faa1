"""Zero padding to a multiple of the model's down-sampling factor, and cropping back.

Like CompressAI's evaluation (`compressai.utils.eval_model`), the image is centred: padding is
split evenly between top/bottom and left/right, the extra pixel going to the bottom/right.
"""

import jax.numpy as jnp
import numpy as np


def padding_for(height, width, multiple=64):
  """((top, bottom), (left, right)) padding that makes H and W multiples of `multiple`."""
  new_h = -(-height // multiple) * multiple
  new_w = -(-width // multiple) * multiple
  top, left = (new_h - height) // 2, (new_w - width) // 2
  return (top, new_h - height - top), (left, new_w - width - left)


def pad(x, multiple=64):
  """[B, H, W, C] -> ([B, H', W', C] zero-padded, padding); H', W' multiples of `multiple`.

  A numpy array is padded in numpy (on the host, e.g. for the encoder), anything else with jnp.
  """
  pads = padding_for(x.shape[1], x.shape[2], multiple)
  if pads == ((0, 0), (0, 0)):
    return x, pads
  xp = np if isinstance(x, np.ndarray) else jnp
  return xp.pad(x, ((0, 0),) + pads + ((0, 0),)), pads


def crop(x, pads):
  """Inverse of `pad`: [B, H', W', C] -> [B, H, W, C]."""
  (top, bottom), (left, right) = pads
  return x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
