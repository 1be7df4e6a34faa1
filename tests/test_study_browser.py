"""End to end in headless Chromium: consent, training, votes, a reload, a too-small window;
and a 2AFC session (the original between the two pictures).

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; skips with the reason
when any is missing. The server runs in a thread on 127.0.0.1 (a free port) and stops at the end.
"""

import csv
import io
import shutil
import threading
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from jaxcomp.study import db, manifest, server
from test_study_2afc import make_2afc_study
from test_study_server import TOKEN, make_study

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium not installed (apt-get install chromium chromium-driver)")]

# pylint: disable=g-import-not-at-top,wrong-import-position
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
# pylint: enable=g-import-not-at-top,wrong-import-position


def _serve(folder, tmp_path):
  """(URL, engine, stop) of the study in `folder` served from a thread."""
  study, folder = manifest.load(folder)
  engine = db.connect(f"sqlite:///{tmp_path / 'votes.db'}")
  httpd = make_server("127.0.0.1", 0, server.create_app(study, folder, engine, TOKEN),
                      threaded=True)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()

  def stop():
    httpd.shutdown()
    thread.join(timeout=10)

  return f"http://127.0.0.1:{httpd.server_port}", engine, stop


@pytest.fixture
def live(tmp_path):
  url, engine, stop = _serve(make_study(str(tmp_path / "study"), trials=4, golden_every=2),
                             tmp_path)
  yield url, engine
  stop()


@pytest.fixture
def live_2afc(tmp_path):
  _, folder = make_2afc_study(tmp_path, count=3)
  url, engine, stop = _serve(folder, tmp_path)
  yield url, engine
  stop()


def _browser(width, height, screen=(1920, 1080)):
  """Headless Chromium with a window of width x height on a screen of the given size."""
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--force-device-scale-factor=1",
              f"--screen-info={{{screen[0]}x{screen[1]}}}"):
    options.add_argument(arg)
  driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                            options=options)
  driver.set_page_load_timeout(30)
  return driver


def _visible(driver, element_id, timeout=15):
  return WebDriverWait(driver, timeout).until(ec.visibility_of_element_located((By.ID, element_id)))


def _count(engine, table):
  with engine.connect() as conn:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def _pending_trial(engine):
  with engine.connect() as conn:
    voted = sa.select(db.votes.c.trial_id)
    return conn.execute(sa.select(db.trials.c.id).where(db.trials.c.id.not_in(voted))).scalar()


def _ready_trial(driver):
  """Waits until a pair is on screen and can be judged; returns its trial id."""
  return int(WebDriverWait(driver, 15).until(
      lambda d: d.find_element(By.ID, "trial").get_attribute("data-ready")))


def _vote(driver, engine, side):
  """Clicks one side of the pair on screen and waits until the vote is in the database."""
  _ready_trial(driver)
  before = _count(engine, db.votes)
  driver.find_element(By.ID, side).click()
  WebDriverWait(driver, 15).until(lambda d: _count(engine, db.votes) == before + 1)


def test_subject_session_in_chromium(live):
  url, engine = live
  driver = _browser(1280, 900)
  try:
    driver.get(url)
    _visible(driver, "consent")
    assert not driver.find_element(By.ID, "start").is_enabled()
    driver.find_element(By.ID, "consent-box").click()
    driver.find_element(By.ID, "start").click()
    _visible(driver, "trial")
    _ready_trial(driver)
    assert "Training" in _visible(driver, "phase").text
    assert not driver.find_element(By.ID, "reference-row").is_displayed()
    # 1:1: the rendered width times devicePixelRatio is the image's own width.
    assert driver.execute_script(
        "const i = document.getElementById('left');"
        "return i.getBoundingClientRect().width * devicePixelRatio === i.naturalWidth;")
    for _ in range(2):  # Training, with feedback.
      _vote(driver, engine, "left")
    _ready_trial(driver)
    assert "Training" not in driver.find_element(By.ID, "phase").text
    _vote(driver, engine, "right")
    pending = _ready_trial(driver)
    assert pending == _pending_trial(engine)
    trials = _count(engine, db.trials)
    driver.refresh()  # Resume: same session, same pending pair, nothing re-assigned.
    assert _ready_trial(driver) == pending and _count(engine, db.trials) == trials
    assert _count(engine, db.subjects) == 1
    while True:
      _vote(driver, engine, "left")
      WebDriverWait(driver, 15).until(lambda d: d.execute_script(
          "return !document.getElementById('done').hidden || "
          "document.getElementById('trial').dataset.ready !== undefined;"))
      if driver.find_element(By.ID, "done").is_displayed():
        break
    # 2 training + 4 main + 2 golden.
    assert _count(engine, db.votes) == 8
    with engine.connect() as conn:
      rows = conn.execute(sa.select(db.votes)).mappings().all()
    assert all(r["display"]["one_to_one"] is True and r["display"]["device_pixel_ratio"] == 1
               and r["response_ms"] > 0 for r in rows)
    with pytest.raises(urllib.error.HTTPError, match="401"):
      urllib.request.urlopen(f"{url}/admin/export.csv", timeout=10)
    request = urllib.request.Request(f"{url}/admin/export.csv",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
      rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    assert len(rows) == 4 and list(rows[0]) == [
        "observer", "session", "scene", "condition_1", "condition_2", "selection"]
  finally:
    driver.quit()


@pytest.mark.parametrize("window, screen, expected", [
    ((1280, 900), (800, 600), "screen 800x600 pixels is smaller than the required 1024x700"),
    ((500, 150), (1920, 1080), "smaller than the required 176x168")])
def test_too_small_display_is_not_admitted(live, window, screen, expected):
  url, engine = live
  driver = _browser(*window, screen=screen)
  try:
    driver.get(url)
    _visible(driver, "consent-box").click()
    driver.find_element(By.ID, "start").click()
    reason = _visible(driver, "refused-reason").text
    assert "too small" in reason and expected in reason, reason
    assert _count(engine, db.subjects) == 0 and _count(engine, db.votes) == 0
  finally:
    driver.quit()


def test_2afc_session_in_chromium(live_2afc):
  url, engine = live_2afc
  driver = _browser(1280, 900)
  try:
    driver.get(url)
    assert "closer to the original" in _visible(driver, "consent").text
    driver.find_element(By.ID, "consent-box").click()
    driver.find_element(By.ID, "start").click()
    _ready_trial(driver)
    assert "closer to the original" in _visible(driver, "phase").text
    # The original sits between the two pictures, all three at 1:1 on one row.
    boxes = driver.execute_script(
        "return ['left', 'reference', 'right'].map((id) => {"
        "  const i = document.getElementById(id), r = i.getBoundingClientRect();"
        "  return [r.left, r.top, r.width * devicePixelRatio, i.naturalWidth]; });")
    assert boxes[0][0] < boxes[1][0] < boxes[2][0] and len({b[1] for b in boxes}) == 1
    assert all(b[2] == b[3] == 32 for b in boxes)
    driver.find_element(By.ID, "reference").click()  # Not a choice: nothing is stored.
    assert _count(engine, db.votes) == 0
    while True:
      _vote(driver, engine, "right")
      WebDriverWait(driver, 15).until(lambda d: d.execute_script(
          "return !document.getElementById('done').hidden || "
          "document.getElementById('trial').dataset.ready !== undefined;"))
      if driver.find_element(By.ID, "done").is_displayed():
        break
    # 2 training + 3 main (every triplet once; 4 asked) + 1 golden.
    with engine.connect() as conn:
      rows = conn.execute(sa.select(db.votes)).mappings().all()
    assert len(rows) == 6 and all(r["side"] == "right" for r in rows)
    assert sorted(r["scene"] for r in rows if r["chosen"] in ("p0", "p1")) == [
        "000000", "000001", "000002"]
    assert all(r["display"]["one_to_one"] is True for r in rows)
  finally:
    driver.quit()
