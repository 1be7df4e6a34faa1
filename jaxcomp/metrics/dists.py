"""DISTS (Ding, Ma, Wang, Simoncelli 2022), as DISTS_pytorch 0.1 `DISTS()(x, y)`.

Stages: the raw image x (3 channels) and the VGG16 L2-pooling taps relu1_2 ... relu5_3 of the
ImageNet-normalised image ((x - [.485 .456 .406]) / [.229 .224 .225]), channels
3, 64, 128, 256, 512, 512 (1475). Per stage k and channel c, over all pixels (population
statistics), with c1 = c2 = 1e-6:

    S1 = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)
    S2 = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2)
    DISTS = 1 - sum_kc (alpha_kc S1_kc + beta_kc S2_kc) / (sum alpha + sum beta)

A distance: 0 for identical images, lower is better; used directly as a loss. No resizing: the
reference script's `prepare_image` resizes large images to a 256 short side before calling the
model; callers that want that must resize themselves.
"""

import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry
from jaxcomp.nets import vgg16
from jaxcomp.nets import weights

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
C1 = C2 = 1e-6
MIN_SIZE = 16
BUNDLES = ("vgg16", "dists")


def load_params(cache=None):
  """{'vgg': VGG16 variables, 'alpha': [1475], 'beta': [1475]} from the weights cache."""
  ab = weights.load("dists", cache)
  return {"vgg": vgg16.load_params(cache), "alpha": jnp.asarray(ab["alpha"]),
          "beta": jnp.asarray(ab["beta"])}


def _stages(params, x):
  h = (x - jnp.asarray(MEAN)) / jnp.asarray(STD)
  return [x] + vgg16.features(params["vgg"], h, pool="l2")


@jax.jit
def dists(x, y, params):
  """DISTS per image (a distance: 0 for identical images, lower is better).

  Args:
    x, y: [B, H, W, 3] RGB float images in [0, 1], H, W >= 16.
    params: from `load_params()`.

  Returns:
    [B] float32.
  """
  imageops.check_pair(x, y, name="dists", min_size=MIN_SIZE, channels=3)
  x, y = imageops.as_float(x), imageops.as_float(y)
  w_sum = jnp.sum(params["alpha"]) + jnp.sum(params["beta"])
  s1s, s2s = [], []
  for fx, fy in zip(_stages(params, x), _stages(params, y)):
    mx, my = jnp.mean(fx, axis=(1, 2)), jnp.mean(fy, axis=(1, 2))
    vx = jnp.mean((fx - mx[:, None, None]) ** 2, axis=(1, 2))
    vy = jnp.mean((fy - my[:, None, None]) ** 2, axis=(1, 2))
    cxy = jnp.mean(fx * fy, axis=(1, 2)) - mx * my
    s1s.append((2 * mx * my + C1) / (mx * mx + my * my + C1))
    s2s.append((2 * cxy + C2) / (vx + vy + C2))
  s1, s2 = jnp.concatenate(s1s, axis=-1), jnp.concatenate(s2s, axis=-1)
  return 1.0 - (s1 @ params["alpha"] + s2 @ params["beta"]) / w_sum


@registry.register("dists")
def _dists_metric(arg=None):
  del arg
  return registry.Metric(
      name="dists", kind="distance", compute=lambda p, x, y: dists(x, y, p),
      loss_fn=lambda p, x, y: dists(x, y, p), params=load_params())
