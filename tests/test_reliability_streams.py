"""Issue 17 item 3: both streams must be consumed exactly; header/stream mismatches say so.

Every file here passes the container checks (lengths and CRC recomputed), as a deliberately
crafted file would.
"""

import numpy as np
import pytest

from coding_models import fixture_image
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from reliability_files import join, split


@pytest.fixture(scope="module")
def files(hyperprior):
  """Two .jxc files of different 80x96 images (kite and its mirror image)."""
  kite = fixture_image("kite_96x80.png")
  return compression.compress(hyperprior, np.stack([kite, np.ascontiguousarray(kite[:, ::-1])]))


@pytest.mark.parametrize("latent", ["z", "y"])
def test_removed_or_shortened_stream_is_missing_data(hyperprior, files, latent):
  fields, z, y = split(files[0])
  for cut in (None, 4, 1):
    streams = {"z": z, "y": y}
    streams[latent] = b"" if cut is None else streams[latent][:-cut]
    with pytest.raises(UserError) as e:
      compression.decompress(hyperprior, join(fields, streams["z"], streams["y"]), where="f.jxc")
    assert str(e.value).startswith("f.jxc: ") and "\n" not in str(e.value)
    assert f"{latent} stream" in str(e.value)
    assert "data missing" in str(e.value) or "cannot decode" in str(e.value)


@pytest.mark.parametrize("latent", ["z", "y"])
def test_trailing_data_in_a_stream_is_refused(hyperprior, files, latent):
  fields, z, y = split(files[0])
  streams = {"z": z, "y": y}
  streams[latent] += bytes(8)
  with pytest.raises(UserError, match=f"the {latent} stream has 8 bytes of trailing data"):
    compression.decompress(hyperprior, join(fields, streams["z"], streams["y"]))


def test_spliced_streams_say_what_is_wrong(hyperprior, files):
  fields, z, y = split(files[0])
  _, z2, y2 = split(files[1])
  assert z != z2 and y != y2
  with pytest.raises(UserError, match="do not belong together"):  # z from the other image
    compression.decompress(hyperprior, join(fields, z2, y))
  with pytest.raises(UserError, match="y stream"):  # y coded with the other image's tables rows
    compression.decompress(hyperprior, join(fields, z, y2))
  fields[8] ^= 1  # index CRC edited
  with pytest.raises(UserError) as e:
    compression.decompress(hyperprior, join(fields, z, y))
  assert "not reproducible" not in str(e.value) and "do not belong together" in str(e.value)


def test_other_latent_grid_in_the_header_is_refused(hyperprior, files):
  fields, z, y = split(files[0])
  fields[6], fields[7] = 200, 300  # another latent grid than the streams were coded for
  with pytest.raises(UserError, match="stream"):
    compression.decompress(hyperprior, join(fields, z, y))
