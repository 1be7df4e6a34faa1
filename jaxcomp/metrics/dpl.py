"""`dpl:<path>`: a deep perceptual loss, LPIPS-style heads trained by `jaxcomp perceptual train`.

The distance is lpips.py's with the heads read from the folder <path> (heads.safetensors +
heads.json, see jaxcomp/metrics/dpl_heads.py) in place of the v0.1 heads, on the VGG16 backbone
saved beside them (backbone.safetensors, when training fine-tuned it: --train-backbone) or else
the pretrained one: 0 for identical images, lower is better, used directly as a loss (and, as
LPIPS, with its distance maps averaged under pixel weights: `weighted_loss_fn`). It is listed in
the registry's `MODULES` (registry.py) for `jaxcomp metric` and training configs.
"""

from jaxcomp.errors import UserError
from jaxcomp.metrics import dpl_heads
from jaxcomp.metrics import lpips
from jaxcomp.metrics import registry
from jaxcomp.nets import vgg16


def load_params(path):
  """{'vgg': VGG16 variables (fine-tuned if saved, else pretrained), 'lin': 5 arrays [C_k]}."""

  lin, meta = dpl_heads.load(path)
  backbone = dpl_heads.load_backbone(path, meta)
  return {"vgg": vgg16.load_params() if backbone is None else backbone, "lin": lin}


@registry.register("dpl", prefix=True)
def _dpl_metric(arg):
  if not arg:
    raise UserError("dpl:<path>: give the folder of trained heads, e.g. dpl:runs/heads")
  return registry.Metric(
      name=f"dpl:{arg}", kind="distance", compute=lambda p, x, y: lpips.lpips(x, y, p),
      loss_fn=lambda p, x, y: lpips.lpips(x, y, p), params=load_params(arg),
      weighted_loss_fn=lambda p, x, y, w: lpips.weighted_lpips(x, y, p, w))
