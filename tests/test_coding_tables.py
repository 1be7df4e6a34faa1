"""Integer CDF tables and their place in the exported model."""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name

import os

import numpy as np
import pytest

from coding_models import export_model
from jaxcomp.codec import export, gaussian_conditional
from jaxcomp.codec import tables
from jaxcomp.errors import UserError


@pytest.mark.parametrize("pmf", [
    [1.0], [0.5, 0.5], [1.0, 0.0, 0.0, 1e-30], [1e-12] * 5 + [1.0], np.ones(4000),
    np.exp(-np.linspace(0, 50, 3000)), [0.0, 0.0, 0.0]])
def test_quantize_pmf_sums_exactly_and_keeps_every_bin(pmf):
  freqs = tables.quantize_pmf(np.asarray(pmf, np.float64), 16)
  assert freqs.sum() == 1 << 16
  assert freqs.min() >= 1
  assert len(freqs) == len(pmf)


def test_quantize_pmf_is_close_to_the_pmf():
  pmf = np.exp(-0.5 * np.linspace(-4, 4, 101) ** 2)
  pmf /= pmf.sum()
  freqs = tables.quantize_pmf(pmf, 16) / 65536.0
  kl_bits = np.sum(pmf * np.log2(pmf / freqs))
  assert kl_bits < 1e-5


def test_gaussian_tables_cover_the_scale_table():
  t = tables.gaussian_tables(gaussian_conditional.scale_table())
  assert t.cdf.shape[0] == 64 and t.cdf.dtype == np.int32
  assert t.length[0] == 4  # -1, 0, 1 and the escape bin at scale 0.11
  assert t.offset[-1] == -int(np.ceil(256 * 6.1094))
  for row in range(64):
    f = t.frequencies(row)
    assert f.sum() == 1 << 16 and f.min() >= 1
    assert np.abs(f[:-1] - f[-2::-1]).max() <= 1  # symmetric up to the last unit


def test_exported_model_has_integer_tables_and_fingerprint(hyperprior_dir):
  with np.load(os.path.join(hyperprior_dir, tables.FILE), allow_pickle=False) as f:
    assert all(np.issubdtype(f[k].dtype, np.integer) for k in f.files)
  _, _, config, t, fingerprint = export.load_for_coding(hyperprior_dir)
  tables.validate(t, config["N"])
  assert t.z.cdf.shape[0] == config["N"]
  assert len(fingerprint) == 64
  with open(os.path.join(hyperprior_dir, export.FINGERPRINT_FILE)) as f:
    assert f.read().strip() == fingerprint
  np.testing.assert_array_equal(t.scale_bounds,
                                gaussian_conditional.scale_table()[:-1].astype(np.float32))


@pytest.mark.slow
def test_fingerprint_is_stable_and_specific(tmp_path, hyperprior_dir):
  again = export_model(tmp_path / "again")
  other = export_model(tmp_path / "other", N=16, M=32)
  fp = lambda d: export.load_for_coding(d)[4]
  assert fp(again) == fp(hyperprior_dir)
  assert fp(other) != fp(hyperprior_dir)


def test_modified_model_files_are_refused(tmp_path):
  path = export_model(tmp_path / "m")
  arrays = dict(np.load(os.path.join(path, tables.FILE), allow_pickle=False))
  arrays["y_offset"] = arrays["y_offset"] - 1
  np.savez(os.path.join(path, tables.FILE), **arrays)
  with pytest.raises(UserError, match="do not match"):
    export.load_for_coding(path)
  arrays["z_cdf"] = arrays["z_cdf"].copy()
  arrays["z_cdf"][0, 1] = 0
  np.savez(os.path.join(path, tables.FILE), **arrays)
  with pytest.raises(UserError, match="invalid coding tables"):
    export.load_for_coding(path)
  os.remove(os.path.join(path, tables.FILE))
  with pytest.raises(UserError, match="no coding tables"):
    export.load_for_coding(path)


def test_table_bits_match_the_density():
  """Coding cost under the integer tables is within 0.2% of the float pmf's entropy."""
  scales = gaussian_conditional.scale_table()
  t = tables.gaussian_tables(scales)
  rng = np.random.default_rng(0)
  for row in (10, 30, 50):
    sigma = np.sqrt(scales[row] * scales[row - 1])
    values = np.round(rng.standard_normal(20000) * sigma).astype(np.int64)
    freqs = t.frequencies(row)
    bits = -np.log2(freqs[values - t.offset[row]] / 65536.0).sum()
    lik = np.asarray(gaussian_conditional.likelihood(values.astype(np.float32),
                                                     np.full(values.shape, sigma, np.float32)))
    assert abs(bits / -np.log2(lik).sum() - 1) < 2e-3
