"""RD figures a reviewer accepts, `jaxcomp plot`, and `bdrate --mode per-image`'s warnings."""

import json

import numpy as np
import pytest
from matplotlib import pyplot as plt
from PIL import Image

from jaxcomp import cli
from jaxcomp.evaluate import plots


def _curve(name, rates, psnr, **more):
  return {"name": name, "description": "test",
          "results": {"bpp": list(rates), "psnr-rgb": list(psnr), **more}}


def _learned(n):
  rates = np.array([0.1, 0.2, 0.4, 0.8])
  return [_curve(f"model-{k}", rates, 28 + 5 * np.log2(rates / 0.1) + 0.1 * k) for k in range(n)]


JPEG = _curve("jpeg-420", [0.2, 0.5, 1.0, 2.0, 3.7], [24, 28, 31, 35, 42])


def test_styles_distinct_for_any_number_of_curves():
  documents = _learned(25) + [JPEG, _curve("WebP", [1], [1]), _curve("VTM", [1], [1]),
                              _curve("BPG 444", [1], [1])]
  styles = plots.curve_styles(documents)
  learned, anchors = styles[:25], styles[25:]
  assert len({s["color"] for s in learned}) == 25 and len({s["color"] for s in anchors}) == 4
  assert not {s["color"] for s in learned} & {s["color"] for s in anchors}
  assert len({(s["color"], s["marker"]) for s in styles}) == len(styles)
  assert {s["linestyle"] for s in learned} == {"-"} and {s["linestyle"] for s in anchors} == {"--"}
  assert all(s.get("alpha", 1.0) == 1.0 for s in learned)
  assert all(s["alpha"] < 1.0 and s["markerfacecolor"] == "none" for s in anchors)
  # Few curves: the first learned colours are tab10's (without its grey), distinct markers.
  few = plots.curve_styles(_learned(3))
  assert [s["marker"] for s in few] == ["o", "s", "^"] and "#7f7f7f" not in plots.LEARNED_COLOURS


def test_anchor_names_and_axis_labels():
  assert [plots.is_anchor({"name": n}) for n in
          ("jpeg-420", "JPEG2000", "WebP (published)", "hm", "hyperprior-mse", "jpegai-v4",
           "bpg_444")] == [True, True, True, True, False, False, True]
  assert plots.axis_label("psnr-rgb") == "PSNR-RGB [dB]"
  assert plots.axis_label("ms-ssim-db-rgb") == "MS-SSIM-RGB [dB]"
  assert plots.axis_label("lpips-rgb") == "LPIPS (VGG)" and plots.axis_label("x-rgb") == "X-RGB"


def test_figure_axes_from_learned_curves_one_legend_units():
  documents = _learned(2) + [JPEG]
  for k, d in enumerate(documents):
    d["results"]["lpips-rgb"] = [0.5 - 0.1 * i - 0.01 * k for i in range(len(d["results"]["bpp"]))]
  fig, clipped = plots.rd_figure(documents, keys=["psnr-rgb", "lpips-rgb"])
  try:
    psnr_ax, lpips_ax = fig.axes[:2]
    assert psnr_ax.get_xlabel() == "rate [bpp]" and psnr_ax.get_ylabel() == "PSNR-RGB [dB]"
    assert "lower is better" in lpips_ax.get_title()
    low, high = psnr_ax.get_xlim()
    assert low >= 0.0 and 0.8 < high < 0.9  # the learned curves' 0.1 .. 0.8 bpp, not JPEG's 3.7
    y_low, y_high = psnr_ax.get_ylim()
    assert 27 < y_low < 28 and 43 < y_high < 44
    assert clipped
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["model-0", "model-1", "jpeg-420"]
    jpeg_line = next(line for line in psnr_ax.get_lines() if line.get_label() == "jpeg-420")
    assert jpeg_line.get_linestyle() == "--" and jpeg_line.get_alpha() < 1
  finally:
    plt.close(fig)
  # Learned models at a single rate give no range to span: everything is shown.
  fig, clipped = plots.rd_figure([_curve("one-model", [0.05], [4.5]), JPEG])
  try:
    assert not clipped and fig.axes[0].get_xlim()[1] > 3.7 and fig.axes[0].get_ylim()[1] > 42
  finally:
    plt.close(fig)


def _write(path, document):
  path.write_text(json.dumps(document))
  return str(path)


def test_plot_command_redraws_without_evaluating(tmp_path, capsys):
  files = [_write(tmp_path / f"r{k}.json", d) for k, d in enumerate(_learned(2) + [JPEG])]
  twin = _write(tmp_path / "twin.json", {**_learned(1)[0]})  # same name as r0.json's curve
  out = tmp_path / "fig" / "rd.png"
  assert cli.main(["plot", *files, twin, "--out", str(out), "--metrics", "psnr",
                   "--title", "t"]) == 0
  printed = capsys.readouterr().out
  assert "4 curves (3 learned, 1 anchors), panels: psnr-rgb" in printed and "clipped" in printed
  with Image.open(out) as image:
    assert image.format == "PNG" and image.size[0] > image.size[1] > 200
  for argv, message in (
      ([files[0], "--out", str(tmp_path / "a.png"), "--metrics", "lpips"],
       "--metrics: no file has 'lpips' values (available: psnr-rgb)"),
      ([files[0], "--out", str(tmp_path / "a.bmpx")], "--out: unknown figure format '.bmpx'"),
      ([str(tmp_path / "missing.json"), "--out", str(tmp_path / "a.png")], "error: "),
      ([_write(tmp_path / "bad.json", {"x": 1}), "--out", str(tmp_path / "a.png")],
       "not a results file")):
    assert cli.main(["plot", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
  assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".bmpx")) == []


def test_bdrate_per_image_keeps_overlap_and_monotonicity_warnings(tmp_path, capsys):
  rates = [0.1, 0.2, 0.4, 0.8]
  anchor_images = {"x.png": {"bpp": rates, "psnr-rgb": [30, 32, 34, 36]},
                   "y.png": {"bpp": rates, "psnr-rgb": [25, 28, 31, 34]}}
  test_images = {"x.png": {"bpp": rates, "psnr-rgb": [30.5, 32.5, 34.5, 36.5]},  # fine
                 "y.png": {"bpp": rates, "psnr-rgb": [31, 33, 32.5, 36]}}  # short, not monotonic
  anchor = _write(tmp_path / "a.json", {**_curve("A", rates, [27.5, 30, 32.5, 35]),
                                        "per_image": anchor_images})
  test = _write(tmp_path / "b.json", {**_curve("B", rates, [30.7, 32.7, 33.5, 36.2]),
                                      "per_image": test_images})
  assert cli.main(["bdrate", "--anchor", anchor, "--test", test, "--mode", "per-image",
                   "--json"]) == 0
  err = capsys.readouterr().err
  assert "warning: the quality ranges overlap by less than 75% of their union in 1 of 2 images " \
         "(y.png " in err
  assert "warning: the test curve's quality does not increase strictly with its rate in 1 of 2 " \
         "images (y.png)" in err
  assert "x.png" not in err
