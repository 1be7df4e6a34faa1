"""`dpl:<path>`: a deep perceptual loss, LPIPS-style heads trained by `jaxcomp perceptual train`.

The distance is lpips.py's with the heads read from the folder <path> (heads.safetensors +
heads.json, see jaxcomp/perceptual/heads.py) in place of the v0.1 heads, on the same frozen
VGG16 backbone: 0 for identical images, lower is better, used directly as a loss. It lives in
jaxcomp.metrics so that the registry finds it for `jaxcomp metric` and training configs.
"""

from jaxcomp.errors import UserError
from jaxcomp.metrics import lpips
from jaxcomp.metrics import registry
from jaxcomp.metrics import vgg16


@registry.register("dpl", prefix=True)
def _dpl_metric(arg):
  from jaxcomp.perceptual import heads  # pylint: disable=g-import-not-at-top

  if not arg:
    raise UserError("dpl:<path>: give the folder of trained heads, e.g. dpl:runs/heads")
  lin, _ = heads.load(arg)
  params = {"vgg": vgg16.load_params(), "lin": lin}
  return registry.Metric(
      name=f"dpl:{arg}", kind="distance", compute=lambda p, x, y: lpips.lpips(x, y, p),
      loss_fn=lambda p, x, y: lpips.lpips(x, y, p), params=params)
