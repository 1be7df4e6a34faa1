"""The pieces of `jaxcomp eval`: runner failures, anchors registry, results keys, table, plot."""

import io
import json

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from jaxcomp.errors import UserError
from jaxcomp.evaluate import anchors, compare, plots, rate_matched, rd_eval, results


def _write_images(folder, count=3, size=(24, 32)):
  folder.mkdir(exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
  return rd_eval.list_images(str(folder))


def _raw_point(label, fail_on=None):
  """A lossless 'codec' writing raw bytes; raises on images whose first pixel equals `fail_on`."""

  def encode(image, path):
    if fail_on is not None and image[0, 0, 0] == fail_on:
      raise RuntimeError("model exploded")
    np.save(path, image)

  return rd_eval.Point(label=label, extension=".npy", encode=encode,
                       decode=lambda path: np.load(path), warm_up=True)


def _mse_metric():
  return rd_eval.MetricFn(key="mse-rgb", params=None,
                          fn=lambda params, x, y: np.mean((x - y)**2, axis=(1, 2, 3)))


def test_a_point_failing_on_one_image_keeps_the_others(tmp_path):
  paths = _write_images(tmp_path / "images")
  bad_pixel = int(np.asarray(Image.open(paths[1]))[0, 0, 0])
  method = rd_eval.Method(name="raw", description="lossless",
                          points=(_raw_point("a"), _raw_point("b", fail_on=bad_pixel)))
  stream = io.StringIO()
  (document,) = rd_eval.evaluate(paths, [method], [_mse_metric()], stream=stream)
  assert "FAILED at 1 of 2 points (b: RuntimeError: model exploded)" in stream.getvalue()
  assert document["errors"] == [{"image": "im1.png", "point": "b",
                                 "error": "RuntimeError: model exploded"}]
  assert document["per_image"]["im1.png"]["bpp"][1] is None
  assert document["per_image"]["im1.png"]["bpp"][0] is not None
  assert rd_eval.complete_images(document) == 2
  npy_bpp = [document["per_image"][f"im{i}.png"]["bpp"][0] for i in (0, 2)]
  assert document["results"]["bpp"] == [pytest.approx(np.mean(npy_bpp))] * 2
  assert document["results"]["mse-rgb"] == [0.0, 0.0]


def test_list_images_skips_other_files(tmp_path):
  paths = _write_images(tmp_path / "images", count=2)
  (tmp_path / "images" / "readme.txt").write_text("x")
  (tmp_path / "images" / ".hidden.png").write_bytes(b"x")
  assert [p.rsplit("/", 1)[1] for p in rd_eval.list_images(str(tmp_path / "images"))] == [
      "im0.png", "im1.png"] == [p.rsplit("/", 1)[1] for p in paths]


def test_anchor_registry():
  assert [a.name for a in anchors.resolve("jpeg, webp,jpeg-420")] == ["jpeg-420", "jpeg-444",
                                                                     "webp"]
  with pytest.raises(UserError, match="unknown anchor"):
    anchors.resolve("bpg")
  with pytest.raises(ValueError, match="twice"):
    anchors.register(anchors.get("webp"))
  png = anchors.Anchor(name="test-png", description="lossless", extension=".png", qualities=(0,),
                       save=lambda image, path, q: Image.fromarray(image).save(path),
                       load=anchors.pillow_load)
  anchors.register(png)
  try:
    assert anchors.resolve("test-png") == [png] and "test-png" in anchors.names()
    method = rd_eval.anchor_method(png)
    assert [p.label for p in method.points] == ["q=0"]
  finally:
    anchors.ANCHORS.remove("test-png")


def test_jpeg_subsampling(tmp_path):
  image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  for name, sampling in (("jpeg-420", 2), ("jpeg-444", 0)):
    path = str(tmp_path / f"{name}.jpg")
    anchors.get(name).save(image, path, 75)
    with Image.open(path) as img:
      assert JpegImagePlugin.get_sampling(img) == sampling
    assert anchors.get(name).load(path).shape == (32, 32, 3)


def test_results_keys():
  assert results.metric_key("psnr") == "psnr-rgb"
  assert results.metric_key("ms_ssim") == "ms-ssim-rgb"
  assert results.metric_key("dpl:/some/heads") == "dpl-rgb"
  assert results.metric_name("ms-ssim-rgb") == "ms_ssim"
  assert [results.higher_is_better(k) for k in ("psnr-rgb", "ms_ssim", "lpips-rgb", "dists",
                                                "gmsd-rgb", "nlpd", "mse-rgb")] == [
                                                    True, True, False, False, False, False, False]
  document = {"name": "x", "results": {"bpp": [0.1, 0.2], "ms-ssim-rgb": [0.9, 0.99]}}
  assert results.resolve_key(document, "ms_ssim") == "ms-ssim-rgb"
  rates, db = results.curve(document["results"], results.resolve_key(document, "ms-ssim-db-rgb"))
  assert db == pytest.approx([10.0, 20.0])
  with pytest.raises(UserError, match="available: ms-ssim-rgb, ms-ssim-db-rgb"):
    results.resolve_key(document, "psnr")


def test_results_load_refuses_non_results(tmp_path):
  for text, message in (("[1, 2]", "not a results file"), ("{", "not a JSON file"),
                        ('{"results": {"psnr-rgb": []}}', "no 'bpp'")):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(UserError, match=message):
      results.load(str(tmp_path / "x.json"))


def test_rate_matched_interpolates_in_log_rate():
  rates, values = [0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0]  # linear in log2(rate)
  got = rate_matched.at_rates(rates, values, [0.05, 0.1, 0.2 * 2**0.5, 0.8, 1.0])
  assert got[0] is None and got[-1] is None
  assert got[1:4] == pytest.approx([30.0, 33.0, 36.0])
  documents = [{"name": "a", "results": {"bpp": rates, "psnr-rgb": values}}]
  rows = rate_matched.table(documents, ["psnr-rgb", "lpips-rgb"], [0.2, 2.0])
  assert rows == {("a", "psnr-rgb"): [pytest.approx(32.0), None]}
  text = rate_matched.markdown(rows, [0.2, 2.0])
  assert "| a | psnr-rgb | 32.0000 | — |" in text


def test_rd_plot_png(tmp_path):
  documents = [{"name": n, "results": {"bpp": [0.1, 0.3, 0.9], "psnr-rgb": [28, 31 + i, 35 + i],
                                       "lpips-rgb": [0.4, 0.3, 0.2]}} for i, n in enumerate("ab")]
  published = [{"name": "paper", "results": {"bpp": [0.2, 0.5], "psnr-rgb": [30, 33]}}]
  path = tmp_path / "rd.png"
  plots.rd_plot(str(path), documents, published, title="t")
  with Image.open(path) as img:
    assert img.format == "PNG" and img.size[0] > img.size[1] > 100


def test_per_image_comparison_skips_non_overlapping_images():
  rates = [0.1, 0.2, 0.4, 0.8]
  anchor = {"name": "a", "results": {"bpp": rates, "psnr-rgb": [30, 31, 32, 33]},
            "per_image": {"x": {"bpp": rates, "psnr-rgb": [30, 31, 32, 33]},
                          "y": {"bpp": rates, "psnr-rgb": [10, 11, 12, 13]}}}
  test = json.loads(json.dumps(anchor))
  test["per_image"]["y"]["psnr-rgb"] = [40, 41, 42, 43]
  with pytest.warns(UserWarning, match="1 of 2 images left out"):
    result = compare.compare(anchor, test, "psnr", "pchip", mode="per-image")
  assert result.images == 1 and result.skipped == ("y",) and result.bd_rate == pytest.approx(0)


def test_default_metrics_skip_those_without_weights(monkeypatch):
  from jaxcomp.metrics import registry  # pylint: disable=g-import-not-at-top

  real_get = registry.get

  def get(name):
    if name == "lpips":
      raise UserError("LPIPS weights are not in the cache; run `jaxcomp weights fetch`")
    return real_get(name)

  monkeypatch.setattr(registry, "names", lambda: ["dpl:<arg>", "lpips", "psnr"])
  monkeypatch.setattr(registry, "get", get)
  metrics, skipped = rd_eval.load_metrics()
  assert [m.key for m in metrics] == ["psnr-rgb"] and list(skipped) == ["lpips"]
  with pytest.raises(UserError, match="weights"):
    rd_eval.load_metrics(["psnr", "lpips"])


def test_metric_direction_falls_back_to_the_registry():
  assert results.higher_is_better("ms-ssim-db-rgb") is True
  with pytest.warns(UserWarning, match="not a known metric"):
    assert results.higher_is_better("bitrate-savings") is True
