"""Display requirements: the screen is large enough and the stimuli fit the window at 1:1.

PC mode shows two stimuli side by side (the reference above them when asked); 2AFC mode shows
three in a row (the reference between the two reconstructions).

The client reports `screen_w`, `screen_h`, `window_w`, `window_h` (CSS pixels) and
`device_pixel_ratio`; physical sizes are CSS sizes times the ratio. Images are shown at CSS size
(W / ratio) so that one image pixel is one device pixel; the client also reports `one_to_one`,
whether the rendered images measured exactly W x H device pixels.
"""

import math

FIELDS = ("screen_w", "screen_h", "window_w", "window_h", "device_pixel_ratio")
# Device pixels around the stimuli side by side (gaps, margins) and above them (text, buttons).
MARGIN_W = 48
MARGIN_H = 120


def parse(display):
  """The validated display dict (floats), or raises ValueError naming the bad field."""
  if not isinstance(display, dict):
    raise ValueError("display must be an object")
  out = {}
  for field in FIELDS:
    value = display.get(field)
    try:
      number = float(value) if isinstance(value, (int, float)) and not isinstance(
          value, bool) else math.nan
    except OverflowError:  # An integer beyond float range.
      number = math.nan
    if not (math.isfinite(number) and 0 < number < 1e6):
      raise ValueError(f"display.{field} must be a positive number below 10^6")
    out[field] = number
  if "one_to_one" in display:
    if not isinstance(display["one_to_one"], bool):
      raise ValueError("display.one_to_one must be true or false")
    out["one_to_one"] = display["one_to_one"]
  return out


def required_window(study):
  """(W, H) device pixels the window needs for the stimuli of one trial (see the docstring)."""
  width, height = study["stimulus_size"]
  if study.get("mode") == "2afc":
    return 3 * width + MARGIN_W, height + MARGIN_H
  rows = 2 if study.get("show_reference") else 1
  return 2 * width + MARGIN_W, rows * height + MARGIN_H


def problems(display, study):
  """Reasons the display is not good enough for `study` (empty if it is)."""
  ratio = display["device_pixel_ratio"]
  need_screen = study.get("display", {}).get("min_screen", [0, 0])
  screen = (display["screen_w"] * ratio, display["screen_h"] * ratio)
  window = (display["window_w"] * ratio, display["window_h"] * ratio)
  need_window = required_window(study)
  reasons = []
  if screen[0] < need_screen[0] or screen[1] < need_screen[1]:
    reasons.append(f"screen {screen[0]:.0f}x{screen[1]:.0f} pixels is smaller than the required "
                   f"{need_screen[0]}x{need_screen[1]}")
  if window[0] < need_window[0] or window[1] < need_window[1]:
    reasons.append(f"window {window[0]:.0f}x{window[1]:.0f} pixels is smaller than the required "
                   f"{need_window[0]}x{need_window[1]} (enlarge the window or use full screen)")
  return reasons
