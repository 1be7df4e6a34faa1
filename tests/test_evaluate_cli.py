"""`jaxcomp bdrate` and `jaxcomp eval`: the command-line contracts, on tiny inputs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxcomp import cli
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from jaxcomp.evaluate import bdrate
from jaxcomp.evaluate import cli as evaluate_cli

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "evaluate", "bdrate_reference.json")
with open(FIXTURE) as _f:
  CASES = [c for c in json.load(_f)["cases"] if c["higher_is_better"]]


@pytest.fixture(autouse=True)
def _only_evaluate_commands(monkeypatch):
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.evaluate.cli",))


def _results_file(path, name, rates, values, key="psnr-rgb", per_image=None):
  document = {"name": name, "description": "test", "results": {"bpp": rates, key: values}}
  if per_image is not None:
    document["per_image"] = per_image
  path.write_text(json.dumps(document))
  return str(path)


def _last_json(capsys):
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES[::4], ids=lambda c: f"{c['name']}-{c['method']}")
def test_bdrate_json_matches_the_package(tmp_path, capsys, case):
  anchor = _results_file(tmp_path / "a.json", "A", case["rate_anchor"], case["quality_anchor"])
  test = _results_file(tmp_path / "b.json", "B", case["rate_test"], case["quality_test"])
  assert cli.main(["bdrate", "--anchor", anchor, "--test", test, "--metric", "psnr",
                   "--method", case["method"], "--json"]) == 0
  out = _last_json(capsys)
  assert set(out) == {"bd_rate", "bd_quality"}
  assert out["bd_rate"] == pytest.approx(case["bd_rate"], abs=1e-6)
  assert out["bd_quality"] == pytest.approx(case["bd_quality"], abs=1e-6)


def test_bdrate_lower_is_better_key(tmp_path, capsys):
  rates = [0.1, 0.2, 0.4, 0.8]
  anchor = _results_file(tmp_path / "a.json", "A", rates, [0.5, 0.4, 0.3, 0.2], "lpips-rgb")
  test = _results_file(tmp_path / "b.json", "B", rates, [0.45, 0.35, 0.25, 0.15], "lpips-rgb")
  assert cli.main(["bdrate", "--anchor", anchor, "--test", test, "--metric", "lpips",
                   "--method", "pchip", "--json"]) == 0
  out = _last_json(capsys)
  expected = bdrate.compare(rates, [-0.5, -0.4, -0.3, -0.2], rates, [-0.45, -0.35, -0.25, -0.15],
                            "pchip")
  assert out == pytest.approx({"bd_rate": expected.bd_rate, "bd_quality": expected.bd_quality})
  assert out["bd_rate"] < 0 and out["bd_quality"] > 0


def test_bdrate_per_image_mode(tmp_path, capsys):
  rates = [0.1, 0.2, 0.4, 0.8]
  images_a = {"x.png": {"bpp": rates, "psnr-rgb": [30, 32, 34, 36]},
              "y.png": {"bpp": rates, "psnr-rgb": [25, 28, 31, 34]}}
  images_b = {"x.png": {"bpp": [0.9 * r for r in rates], "psnr-rgb": [30, 32, 34, 36]},
              "y.png": {"bpp": [0.7 * r for r in rates], "psnr-rgb": [25, 28, 31, 34]}}
  anchor = _results_file(tmp_path / "a.json", "A", rates, [27.5, 30, 32.5, 35], per_image=images_a)
  test = _results_file(tmp_path / "b.json", "B", [0.8 * r for r in rates], [27.5, 30, 32.5, 35],
                       per_image=images_b)
  argv = ["bdrate", "--anchor", anchor, "--test", test, "--metric", "psnr-rgb", "--method",
          "akima", "--json"]
  assert cli.main(argv + ["--mode", "per-image"]) == 0
  assert _last_json(capsys)["bd_rate"] == pytest.approx(-20.0)  # mean of -10% and -30%
  assert cli.main(argv) == 0
  assert _last_json(capsys)["bd_rate"] == pytest.approx(-20.0)  # the mean curves: 0.8x


def test_bdrate_user_errors(tmp_path, capsys):
  rates = [0.1, 0.2, 0.4, 0.8]
  anchor = _results_file(tmp_path / "a.json", "A", rates, [30, 32, 34, 36])
  far = _results_file(tmp_path / "b.json", "B", rates, [40, 42, 44, 46])
  (tmp_path / "bad.json").write_text("{\"results\": {\"psnr-rgb\": [1]}}")
  cases = [
      ([anchor, far, "psnr-rgb"], "do not overlap"),
      ([anchor, anchor, "lpips"], "no 'lpips' values"),
      ([anchor, str(tmp_path / "bad.json"), "psnr"], "no 'bpp'"),
      ([anchor, str(tmp_path / "missing.json"), "psnr"], "No such file"),
  ]
  for (a, b, metric), message in cases:
    assert cli.main(["bdrate", "--anchor", a, "--test", b, "--metric", metric, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
  assert cli.main(["bdrate", "--anchor", anchor, "--test", anchor, "--mode", "per-image"]) == 2
  assert "no per-image results" in capsys.readouterr().err


def _smooth_image(seed, height=40, width=48):
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  base = np.stack([np.sin(x / (3 + c + seed)) + np.cos(y / (4 + c)) for c in range(3)], -1)
  return np.clip(127 + 60 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def image_dir(tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  for i in range(2):
    Image.fromarray(_smooth_image(i)).save(folder / f"img{i}.png")
  return folder


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
  return 10 * np.log10(255.0**2 / mse)


def test_eval_anchors_real_files(image_dir, tmp_path, capsys):
  out = tmp_path / "out" / "r.json"
  plot = tmp_path / "out" / "rd.svg"
  assert cli.main(["eval", "--images", str(image_dir), "--out", str(out), "--anchors", "jpeg,webp",
                   "--anchor-qualities", "20,60,90", "--metrics", "psnr,mse", "--plot", str(plot),
                   "--bpp-targets", "1.5,2.5"]) == 0
  stdout = capsys.readouterr().out
  assert "| curve | metric | 1.5 bpp | 2.5 bpp |" in stdout
  assert plot.read_text().lstrip().startswith("<?xml")
  files = {"jpeg-420": "r.json", "jpeg-444": "r.jpeg-444.json", "webp": "r.webp.json"}
  for name, subsampling in (("jpeg-420", "4:2:0"), ("jpeg-444", "4:4:4"), ("webp", None)):
    document = json.loads((tmp_path / "out" / files[name]).read_text())
    assert document["name"] == name and document["points"] == ["q=20", "q=60", "q=90"]
    assert set(document["results"]) == {"bpp", "psnr-rgb", "mse-rgb", "encoding_time",
                                        "decoding_time"}
    # bpp and PSNR are those of the real files Pillow writes with the same settings.
    original = np.asarray(Image.open(image_dir / "img1.png").convert("RGB"))
    path = str(tmp_path / ("x.jpg" if subsampling else "x.webp"))
    options = {"subsampling": subsampling} if subsampling else {}
    Image.fromarray(original).save(path, quality=60, **options)
    table = document["per_image"]["img1.png"]
    assert table["bpp"][1] == 8 * os.path.getsize(path) / (40 * 48)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert table["psnr-rgb"][1] == pytest.approx(_psnr(decoded, original), abs=1e-3)
    mean = np.mean([document["per_image"][f"img{i}.png"]["bpp"] for i in range(2)], axis=0)
    assert document["results"]["bpp"] == pytest.approx(list(mean))
    assert document["errors"] == []


def test_eval_model_and_bad_image(image_dir, tmp_path, capsys, hyperprior, hyperprior_dir):
  (image_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
  (image_dir / "gone.png").symlink_to(tmp_path / "deleted.png")
  out = tmp_path / "r.json"
  status = cli.main(["eval", "--model", hyperprior_dir, "--name", "tiny", "--images",
                     str(image_dir), "--out", str(out), "--metrics", "psnr"])
  assert status == 1  # written, but two images failed
  err = capsys.readouterr().err
  assert "[4/4]" in err and "ETA" in err
  assert "error: broken.png: cannot read" in err and "error: gone.png: cannot read" in err
  document = json.loads(out.read_text())
  assert document["name"] == "tiny" and document["points"] == [hyperprior_dir]
  assert set(document["per_image"]) == {"img0.png", "img1.png"}
  assert [e["image"] for e in document["errors"]] == ["broken.png", "gone.png"]
  original = _smooth_image(0)
  data = compression.compress(hyperprior, original[None])[0]
  assert document["per_image"]["img0.png"]["bpp"] == [8 * len(data) / (40 * 48)]
  decoded = compression.decompress(hyperprior, data)
  assert document["per_image"]["img0.png"]["psnr-rgb"][0] == pytest.approx(
      _psnr(decoded, original), abs=1e-3)


def test_eval_image_modes(tmp_path, capsys):
  folder = tmp_path / "images"
  folder.mkdir()
  rgb = _smooth_image(3)
  Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
  Image.fromarray(rgb).convert("P").save(folder / "palette.png")
  Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(folder / "rgba.png")
  Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "deep.png")
  out = tmp_path / "r.json"
  assert cli.main(["eval", "--images", str(folder), "--out", str(out), "--anchors", "webp",
                   "--anchor-qualities", "50,90", "--metrics", "psnr"]) == 1
  err = capsys.readouterr().err
  assert "error: deep.png:" in err and "16 bits" in err and "alpha" in err
  document = json.loads(out.read_text())
  assert sorted(document["per_image"]) == ["gray.png", "palette.png", "rgba.png"]
  assert all(v > 20 for v in document["results"]["psnr-rgb"])


def test_eval_user_errors(image_dir, tmp_path, capsys):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "notes.txt").write_text("no images here")
  out = tmp_path / "r.json"
  cases = [
      (["--images", str(empty), "--anchors", "jpeg"], "no image files"),
      (["--images", str(tmp_path / "missing"), "--anchors", "jpeg"], "No such folder"),
      (["--images", str(empty)], "at least one --model or --anchors"),
      (["--images", str(empty), "--anchors", "jpeg2000"], "unknown anchor"),
      (["--images", str(empty), "--anchors", "jpeg", "--plot", "x.bmpx"], "figure format"),
      (["--images", str(image_dir), "--model", str(tmp_path)], "not a jaxcomp model"),
      (["--images", str(image_dir), "--anchors", "webp", "--metrics", "psnr,foo"],
       "unknown metric 'foo'"),
      (["--images", str(image_dir), "--anchors", "webp", "--bpp-targets", "low"],
       "comma-separated numbers"),
  ]
  for argv, message in cases:
    assert cli.main(["eval", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert not out.exists()


def test_eval_only_bad_images_writes_nothing(tmp_path, capsys):
  folder = tmp_path / "images"
  folder.mkdir()
  (folder / "a.png").write_bytes(b"garbage")
  out = tmp_path / "r.json"
  assert cli.main(["eval", "--images", str(folder), "--out", str(out), "--anchors", "webp",
                   "--metrics", "psnr"]) == 2
  assert "nothing written" in capsys.readouterr().err
  assert not list(tmp_path.glob("r*.json"))


def test_model_curves_and_output_paths(tmp_path):
  # pylint: disable=protected-access
  curves = evaluate_cli._model_curves(
      ["m/q1", "mse=m/q2", "lpips=l/q1", "mse=m/q3", str(tmp_path)], "base")
  assert curves == {"base": ["m/q1", str(tmp_path)], "mse": ["m/q2", "m/q3"], "lpips": ["l/q1"]}
  paths = evaluate_cli._output_paths("out/r.json", ["base", "webp"])
  assert paths == {"base": "out/r.json", "webp": "out/r.webp.json"}
  with pytest.raises(UserError, match="curve names"):
    evaluate_cli._model_curves(["a/b=c"], "base")
