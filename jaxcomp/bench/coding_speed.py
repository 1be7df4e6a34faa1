"""`jaxcomp bench codec`: compress/decompress time of one image, and the entropy coder's share.

    jaxcomp bench codec --model DIR --image PNG [--coder constriction] [--repeats 7] [--json]

Times (medians after one compiling run):
  compress_s    image -> .jxc bytes (analysis, hyper-synthesis, entropy coding, container);
  decompress_s  .jxc bytes -> image;
  coding_encode_s / coding_decode_s  the entropy coder alone on the same symbols (z and y);
  coding_s      the larger of those two: the most one side spends in the entropy coder.
When torch and CompressAI import, the same weights are loaded into CompressAI's model (the
inverse of `jaxcomp.codec.compressai_import`) and its compress/decompress (zero-padding to 64
included) are timed in the same run; ratios are jaxcomp / CompressAI (below 1: jaxcomp faster).
With --json the last stdout line is one JSON object with all of these.
"""

import json

import numpy as np

from jaxcomp import images
from jaxcomp.bench import timing
from jaxcomp.codec import compressai_import, export
from jaxcomp.coding import compression, container

_COMPRESSAI_CLASSES = {"bmshj2018-hyperprior": "ScaleHyperprior",
                       "mbt2018-mean": "MeanScaleHyperprior"}


def entropy_coding(cm, sym, bitstream, backend):
  """(encode, decode): the range coding alone of one image's symbols, as timed closures.

  Args:
    cm: a `compression.CodingModel` (the exported model with its entropy coders).
    sym: `compression.symbols` of the image (z values, y values and their scale indexes).
    bitstream: the parsed .jxc of the same image (`container.parse`), whose streams decode
      reads.
    backend: entropy-coder name ('constriction', 'tfc').
  """
  z_coder, y_coder = cm.coder(backend, "z"), cm.coder(backend, "y")
  z_indexes = compression.z_indexes(sym.z_values.shape)

  def encode():
    z_coder.encode(sym.z_values, z_indexes)
    y_coder.encode(sym.y_values, sym.y_indexes)

  def decode():
    z_coder.decode(bitstream.z_stream, z_indexes)
    y_coder.decode(bitstream.y_stream, sym.y_indexes)

  return encode, decode


def add_arguments(parser):
  parser.add_argument("--model", required=True, help="exported model directory")
  parser.add_argument("--image", required=True, help="image to code (e.g. a 768x512 PNG)")
  parser.add_argument("--coder", default="constriction", choices=["constriction", "tfc"])
  parser.add_argument("--repeats", type=int, default=7, help="timed runs after the first")
  parser.add_argument("--json", action="store_true", help="print one JSON line last")


def compressai_state_dict(variables):
  """jaxcomp variables -> CompressAI state_dict (numpy), the inverse of `compressai_import`."""
  sd = compressai_import.to_state_dict(variables["params"])
  quantiles = np.asarray(variables["quantiles"]["entropy_bottleneck"]["z"])
  sd["entropy_bottleneck.quantiles"] = quantiles[:, None, :]
  return sd


def _compressai_times(config, variables, image, repeats):
  """(compress_s, decompress_s, bytes) of CompressAI on the same weights, or None (reason)."""
  try:  # torch and CompressAI: optional references, absent from the core install
    import compressai.models  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    return None, f"CompressAI comparison skipped ({type(e).__name__}: {e})"
  cls = getattr(compressai.models, _COMPRESSAI_CLASSES[config["arch"]])
  net = cls(config["N"], config["M"]).eval()
  state = net.state_dict()  # CompressAI's buffers (CDF tables, bounds), rebuilt by update()
  ours = compressai_state_dict(variables)
  unexpected = sorted(set(ours) - set(state))
  if unexpected:
    return None, f"CompressAI comparison skipped (unexpected names {unexpected[:3]})"
  state.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.items()})
  net.load_state_dict(state)
  net.update(force=True)
  height, width = image.shape[:2]
  pad_h, pad_w = (-height) % 64, (-width) % 64
  x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0

  def compress():
    padded = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return net.compress(padded)

  def decompress(out):
    x_hat = net.decompress(out["strings"], out["shape"])["x_hat"]
    return x_hat[..., pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]

  with torch.no_grad():
    out = compress()
    decompress(out)
    compress_s = timing.median_s(compress, repeats)
    decompress_s = timing.median_s(lambda: decompress(out), repeats)
  size = sum(len(s[0]) for s in out["strings"])
  return (compress_s, decompress_s, size), None


def run(args):

  cm = compression.CodingModel(args.model)
  image, channels = images.read(args.image)
  batch = image[None]
  data = compression.compress(cm, batch, [channels], backend=args.coder)[0]
  compression.decompress(cm, data)
  result = {"image": args.image, "model": args.model, "coder": args.coder,
            "height": image.shape[0], "width": image.shape[1],
            "bpp": 8 * len(data) / (image.shape[0] * image.shape[1])}
  result["compress_s"] = timing.median_s(
      lambda: compression.compress(cm, batch, [channels], backend=args.coder), args.repeats)
  result["decompress_s"] = timing.median_s(lambda: compression.decompress(cm, data), args.repeats)

  y, z = cm.analysis(compression.padded_input(batch), saliency=cm.saliency_map(batch))
  sym = compression.symbols(cm, y[0], z[0])
  bitstream = container.parse(data, cm.fingerprint)
  encode, decode = entropy_coding(cm, sym, bitstream, args.coder)
  result["coding_encode_s"] = timing.median_s(encode, args.repeats)
  result["coding_decode_s"] = timing.median_s(decode, args.repeats)
  result["coding_s"] = max(result["coding_encode_s"], result["coding_decode_s"])
  result["symbols"] = int(sym.y_values.size + sym.z_values.size)

  _, variables, config = export.load(args.model)
  reference, note = _compressai_times(config, variables, image, args.repeats)
  if reference:
    result["compressai_compress_s"], result["compressai_decompress_s"], size = reference
    result["compressai_bpp"] = 8 * size / (image.shape[0] * image.shape[1])
    result["compress_ratio"] = result["compress_s"] / result["compressai_compress_s"]
    result["decompress_ratio"] = result["decompress_s"] / result["compressai_decompress_s"]
  else:
    print(note)
  print(f"jaxcomp ({args.coder}): compress {result['compress_s']:.3f} s, decompress "
        f"{result['decompress_s']:.3f} s, entropy coding {1e3 * result['coding_encode_s']:.1f} / "
        f"{1e3 * result['coding_decode_s']:.1f} ms for {result['symbols']} symbols, "
        f"{result['bpp']:.4f} bpp")
  if reference:
    print(f"CompressAI: compress {result['compressai_compress_s']:.3f} s, decompress "
          f"{result['compressai_decompress_s']:.3f} s, {result['compressai_bpp']:.4f} bpp; "
          f"jaxcomp / CompressAI: {result['compress_ratio']:.2f} (compress), "
          f"{result['decompress_ratio']:.2f} (decompress)")
  if args.json:
    print(json.dumps(result))
  return 0
