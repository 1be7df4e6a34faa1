"""Rate maps: where a model spends its bits, in bits per pixel at the image's resolution.

The model codes the image zero-padded (centred) to a multiple of 64 (`padding`). Each latent
element's information, -log2 p, is spread evenly over the block of padded pixels it covers --
16x16 for y, 64x64 for z (the block size is read off the shapes: padded size / latent size) --
summed over the latent's channels, and the padding is cropped exactly as the model crops x_hat:

    map_y[b, i, j] = sum_c -log2 p_y[b, i // 16, j // 16, c] / 256     (padded coordinates)
    map_z[b, i, j] = sum_c -log2 p_z[b, i // 64, j // 64, c] / 4096
    rate_map = crop(map_y + map_z)                                     [B, H, W] bits per pixel

Bits that fall on the padding are dropped, so the map sums to the model's total bits
(`models.rate_bits`) exactly when H and W are multiples of 64, and to slightly less otherwise.
With eval-mode likelihoods (`training=False`: y and z rounded as the entropy coder rounds them)
the map is the model's estimate of the bitstream; the real file adds the container header and
the coder's overhead (typically well under 1 %).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.codec import models, padding


def latent_rate_maps(likelihoods, image_size):
  """Each latent's bits per pixel at pixel resolution.

  Args:
    likelihoods: {name: [B, h, w, C] probabilities in (0, 1]}, e.g. the model's
      out['likelihoods'] ({'y': [B, H'/16, W'/16, M], 'z': [B, H'/64, W'/64, N]}), over the
      input padded to H' x W' (`padding.padding_for(H, W, 64)`).
    image_size: (H, W) of the unpadded image.

  Returns:
    {name: [B, H, W] float32}, bits per pixel, padding cropped.
  """
  height, width = image_size
  pads = padding.padding_for(height, width, models.DOWNSAMPLING)
  padded = (height + sum(pads[0]), width + sum(pads[1]))
  maps = {}
  for name, likelihood in likelihoods.items():
    h, w = likelihood.shape[1:3]
    if padded[0] % h or padded[1] % w or padded[0] // h != padded[1] // w:
      raise ValueError(f"likelihoods '{name}' {tuple(likelihood.shape)} do not tile the padded "
                       f"image {padded} (image size {height}x{width})")
    block = padded[0] // h
    bits = jnp.sum(-jnp.log2(jnp.asarray(likelihood, jnp.float32)), axis=-1) / (block * block)
    spread = jnp.repeat(jnp.repeat(bits, block, axis=1), block, axis=2)
    maps[name] = padding.crop(spread[..., None], pads)[..., 0]
  return maps


def rate_map(likelihoods, image_size):
  """Bits per pixel of all latents together: [B, H, W] float32 (see `latent_rate_maps`).

  Sums to `models.rate_bits(likelihoods)` when H and W are multiples of 64; bits over the
  padding are dropped otherwise.
  """
  maps = latent_rate_maps(likelihoods, image_size)
  return sum(maps.values())


@functools.lru_cache(maxsize=None)
def _likelihoods_fn(model):
  """Jitted (variables, x, saliency) -> eval-mode likelihoods, one program per model definition."""
  if model.needs_saliency:
    return jax.jit(lambda v, x, s: model.apply(v, x, training=False, saliency=s)["likelihoods"])
  return jax.jit(lambda v, x, s: model.apply(v, x, training=False)["likelihoods"])


def model_rate_map(model, variables, images, saliency=None):
  """Runs the model in eval mode and returns its rate map.

  Args:
    model: `models.Hyperprior`.
    variables: its variables.
    images: [B, H, W, 3] or [H, W, 3]; uint8 (0..255) or float in [0, 1].
    saliency: [B, H, W] or [H, W] in [0, 1], the encoder's saliency map; required iff
      `model.needs_saliency`, ignored otherwise.

  Returns:
    float32 numpy [B, H, W] (or [H, W] for a single image), bits per pixel.
  """
  images = np.asarray(images)
  single = images.ndim == 3
  if single:
    images = images[None]
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"expected images [B, H, W, 3] or [H, W, 3], got {images.shape}")
  x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(
      np.float32)
  s = None
  if model.needs_saliency:
    if saliency is None:
      raise ValueError("this model's encoder takes a saliency map: pass saliency=[B, H, W]")
    s = np.asarray(saliency, np.float32)
    s = s[None] if s.ndim == 2 else s
    if s.shape != x.shape[:3]:
      raise ValueError(f"saliency map {s.shape} does not match the images {x.shape[:3]}")
  likelihoods = _likelihoods_fn(model)(variables, x, s)
  out = np.asarray(rate_map(likelihoods, x.shape[1:3]))
  return out[0] if single else out
