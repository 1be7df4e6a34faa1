"""Input pipeline: image folders, deterministic crops, host/device sharding, resumption."""

import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.train import input_pipeline


def _write_images(folder, sizes, seed=0):
  rng = np.random.default_rng(seed)
  (folder / "sub").mkdir(parents=True, exist_ok=True)
  for i, (h, w) in enumerate(sizes):
    pixels = (rng.uniform(size=(h, w, 3)) * 255).astype(np.uint8)
    name = f"sub/img{i}.jpg" if i % 2 else f"img{i}.png"
    Image.fromarray(pixels).save(folder / name)
  return folder


@pytest.fixture
def folder(tmp_path):
  return _write_images(tmp_path / "images", [(40, 48), (48, 40), (64, 64), (20, 80), (36, 36)])


def test_folder_is_recursive_and_skips_small_and_unreadable_images(folder):
  (folder / "broken.png").write_bytes(b"not an image")
  source = input_pipeline.ImageFolder(str(folder), min_size=32)
  assert len(source) == 4
  assert source.skipped_small == 1
  assert source[0].dtype == np.uint8 and source[0].shape[-1] == 3


def test_empty_or_missing_source_is_a_user_error(tmp_path, folder):
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no usable images"):
    input_pipeline.ImageFolder(str(tmp_path / "empty"), min_size=32)
  with pytest.raises(UserError, match="not found"):
    input_pipeline.ImageFolder(str(tmp_path / "missing"), min_size=32)
  with pytest.raises(UserError, match="smaller than"):
    input_pipeline.ImageFolder(str(folder), min_size=100)


def test_crops_are_deterministic_in_seed_and_index(folder):
  source = input_pipeline.ImageFolder(str(folder), min_size=32)
  a = input_pipeline.CropStream(source, 32, seed=3).batch(0, 10)
  b = input_pipeline.CropStream(source, 32, seed=3).batch(0, 10)
  c = input_pipeline.CropStream(source, 32, seed=4).batch(0, 10)
  assert a.shape == (10, 32, 32, 3) and a.dtype == np.float32
  assert 0.0 <= a.min() and a.max() <= 1.0
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_split_over_hosts_and_devices_gives_the_global_batch(folder):
  stream = input_pipeline.CropStream(input_pipeline.ImageFolder(str(folder), 32), 32, seed=0)
  whole = _take(input_pipeline.host_batches(stream, 8, 0, 0, 1, 1), 3)
  hosts = [_take(input_pipeline.host_batches(stream, 8, 0, h, 2, 2), 3) for h in range(2)]
  for k in range(3):
    np.testing.assert_array_equal(whole[k][0], [8 * k])
    joined = np.concatenate([hosts[h][k][1].reshape((-1, 32, 32, 3)) for h in range(2)])
    np.testing.assert_array_equal(joined, whole[k][1][0])
    np.testing.assert_array_equal(hosts[1][k][0], [8 * k + 4, 8 * k + 6])


def test_restarting_at_the_saved_example_continues_the_stream(folder):
  stream = input_pipeline.CropStream(input_pipeline.ImageFolder(str(folder), 32), 32, seed=0)
  run = _take(input_pipeline.host_batches(stream, 4, 0, 0, 1, 2), 5)
  resumed = _take(input_pipeline.host_batches(stream, 4, 12, 0, 1, 2), 2)
  for (a_first, a), (b_first, b) in zip(run[3:], resumed):
    np.testing.assert_array_equal(a_first, b_first)
    np.testing.assert_array_equal(a, b)


def test_batch_not_divisible_by_devices_is_a_user_error(folder):
  stream = input_pipeline.CropStream(input_pipeline.ImageFolder(str(folder), 32), 32, seed=0)
  with pytest.raises(UserError, match="not divisible"):
    next(input_pipeline.host_batches(stream, 6, 0, 0, 1, 4))


def test_images_too_small_for_the_crop_are_skipped_when_drawn(folder):
  source = input_pipeline.ImageFolder(str(folder), min_size=32)
  stream = input_pipeline.CropStream(source, 48, seed=0)
  crops = stream.batch(0, 6)
  assert crops.shape == (6, 48, 48, 3)
  assert source.skipped_small > 0


def test_tfds_source_reads_images_by_index_without_tensorflow(monkeypatch):
  rng = np.random.default_rng(0)
  records = [{"image": (rng.uniform(size=(h, 40, 3)) * 255).astype(np.uint8)} for h in (40, 20, 48)]
  calls = {}

  def data_source(name, split, data_dir, download):
    calls.update(name=name, split=split, data_dir=data_dir, download=download)
    return records

  fake_tfds = type(sys)("tensorflow_datasets")
  fake_tfds.data_source = data_source
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake_tfds)
  config = ml_collections.ConfigDict({"dir": "", "tfds_name": "clic", "tfds_split": "train",
                                      "tfds_data_dir": "/data/tfds"})
  source = input_pipeline.create_source(config, 32)
  assert calls == {"name": "clic", "split": "train", "data_dir": "/data/tfds", "download": False}
  assert len(source) == 3 and source.name == "tfds:clic/train"
  crops = input_pipeline.CropStream(source, 32, seed=0).batch(0, 6)
  assert crops.shape == (6, 32, 32, 3)
  assert source.skipped_small >= 1  # the 20-pixel-high image is skipped when drawn
