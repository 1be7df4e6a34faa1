"""`jaxcomp bdrate-matrix`: cells equal per-pair `compare`, empty cells, outputs, bad input."""

import json

import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.evaluate import bdrate_matrix, compare, results

RATES = np.array([0.12, 0.2, 0.33, 0.5])


def _document(name, rate_scale=1.0, psnr_shift=0.0, lpips_scale=1.0, rates=RATES):
  rates = np.asarray(rates) * rate_scale
  psnr = 26.0 + 6.0 * np.log2(rates / (0.12 * rate_scale)) + psnr_shift
  lpips = 0.4 * (0.12 * rate_scale / rates) ** 0.5 * lpips_scale
  per_image = {f"im{k}.png": {"bpp": list(rates * (1 + 0.05 * k)), "psnr-rgb": list(psnr + k),
                              "lpips-rgb": list(lpips * (1 - 0.02 * k))} for k in range(3)}
  return {"name": name, "description": "synthetic",
          "results": {"bpp": list(rates), "psnr-rgb": list(psnr), "lpips-rgb": list(lpips),
                      "encoding_time": [0.1] * len(rates)},
          "per_image": per_image}


def _write(tmp_path, document):
  path = tmp_path / f"{document['name']}.json"
  path.write_text(json.dumps(document))
  return str(path)


ANCHOR = _document("mse")
TESTS = [_document("ssim", 0.9, -0.2, 0.95), _document("lpips", 1.1, -0.8, 0.8)]


@pytest.mark.filterwarnings("ignore:the quality ranges overlap")
@pytest.mark.parametrize("mode", ["curve", "per-image"])
def test_cells_equal_compare(mode):
  m = bdrate_matrix.matrix(ANCHOR, TESTS, ["psnr-rgb", "lpips-rgb"], "pchip", mode)
  assert m.models == ("ssim", "lpips") and m.keys == ("psnr-rgb", "lpips-rgb")
  for test in TESTS:
    for key in m.keys:
      expected = compare.compare(ANCHOR, test, key, "pchip", mode)
      assert m.cells[test["name"]][key].bd_rate == expected.bd_rate
      assert m.cells[test["name"]][key].bd_quality == expected.bd_quality
  # lower-is-better handled like compare: less LPIPS at equal rate is a negative BD-rate.
  assert m.cells["lpips"]["lpips-rgb"].bd_rate < 0


def test_non_overlapping_cell_is_empty_with_reason(tmp_path):
  far = _document("far", rates=RATES * 40, psnr_shift=40.0)
  m = bdrate_matrix.matrix(ANCHOR, [TESTS[0], far], ["psnr-rgb"])
  cell = m.cells["far"]["psnr-rgb"]
  assert cell.bd_rate is None and "do not overlap" in cell.error
  text = bdrate_matrix.markdown(m)
  assert cell.side == "better"  # its PSNR lies above the anchor's at every point
  assert "| far | — (better) |" in text and "far on PSNR: the quality ranges do not overlap" in text
  assert bdrate_matrix.to_json(m)["cells"]["far"]["psnr-rgb"]["bd_rate"] is None


def test_cli_writes_table_heat_map_json(tmp_path, capsys):
  anchor = _write(tmp_path, ANCHOR)
  tests = [_write(tmp_path, t) for t in TESTS]
  out, plot, out_json = tmp_path / "m.md", tmp_path / "m.png", tmp_path / "m.json"
  status = cli.main(["bdrate-matrix", "--anchor", anchor, "--test", anchor, *tests,
                     "--out", str(out), "--plot", str(plot), "--out-json", str(out_json),
                     "--json"])
  assert status == 0
  document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert document["models"] == ["ssim", "lpips"]  # the anchor's own file skipped
  assert document["metrics"] == ["psnr-rgb", "lpips-rgb"]  # default: the anchor's quality keys
  assert json.loads(out_json.read_text()) == document
  assert "**" in out.read_text()  # own-metric cell (lpips on LPIPS) in bold
  assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  expected = compare.compare(ANCHOR, TESTS[1], "psnr", "pchip")
  assert document["cells"]["lpips"]["psnr-rgb"]["bd_rate"] == pytest.approx(expected.bd_rate)


@pytest.mark.parametrize("args, message", [
    (["--metrics", "vsi"], "no 'vsi' values"),
    (["--plot", "m.bmpx"], "unknown figure format"),
    (["--min-overlap", "2"], "--min-overlap must be within"),
])
def test_bad_input_one_line(tmp_path, capsys, args, message):
  anchor, test = _write(tmp_path, ANCHOR), _write(tmp_path, TESTS[0])
  status = cli.main(["bdrate-matrix", "--anchor", anchor, "--test", test, *args])
  err = capsys.readouterr().err
  assert status == 2 and err.startswith("error: ") and message in err
  assert len(err.strip().splitlines()) == 1


def test_duplicate_names_refused():
  with pytest.raises(results.UserError, match="curve name ssim"):
    bdrate_matrix.matrix(ANCHOR, [TESTS[0], TESTS[0]], ["psnr-rgb"])
