// Subject page of `jaxcomp study serve`: consent, display checks, training and votes.
// The server decides everything that matters (admission, which pair, one vote per pair); this
// script reports the display, shows each pair at 1:1 and measures the response time.
// In 2AFC mode (body data-mode="2afc") the original sits between the two pictures and the
// question is which one is closer to it.
"use strict";

const KEY = "jaxcomp-study-session";
const $ = (id) => document.getElementById(id);
const TWO_AFC = document.body.dataset.mode === "2afc";
const QUESTION = TWO_AFC ? "Which picture is closer to the original (middle)?" :
    "Which picture has better quality?";
let current = null;   // {trial, kind, shownAt}
let busy = false;
let referenceShown = false;

function display(oneToOne) {
  const d = {
    screen_w: screen.width, screen_h: screen.height,
    window_w: window.innerWidth, window_h: window.innerHeight,
    device_pixel_ratio: window.devicePixelRatio || 1,
  };
  if (oneToOne !== undefined) d.one_to_one = oneToOne;
  return d;
}

function show(id) {
  for (const s of ["consent", "refused", "trial", "done", "failure"]) $(s).hidden = s !== id;
}

function fail(message) {
  $("failure-reason").textContent = message;
  show("failure");
}

async function api(method, url, body) {
  const init = {method, headers: {"Content-Type": "application/json"}};
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url, init);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
  return {status: response.status, data};
}

function progress(data) {
  if (data.total !== undefined) $("progress").textContent = `${data.voted} / ${data.total}`;
}

function loaded(img) {
  return img.complete && img.naturalWidth > 0 ? Promise.resolve() :
      new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; });
}

// Shows an image so that one image pixel is one device pixel.
function placeOneToOne(img) {
  const ratio = window.devicePixelRatio || 1;
  img.style.width = `${img.naturalWidth / ratio}px`;
  img.style.height = `${img.naturalHeight / ratio}px`;
}

function shownOneToOne() {
  const ratio = window.devicePixelRatio || 1;
  const imgs = [$("left"), $("right")];
  if (referenceShown) imgs.push($("reference"));
  return imgs.every((img) => {
    const r = img.getBoundingClientRect();
    return Math.abs(r.width * ratio - img.naturalWidth) < 0.5 &&
        Math.abs(r.height * ratio - img.naturalHeight) < 0.5;
  });
}

async function nextTrial(sid) {
  const {status, data} = await api("GET", `/api/session/${sid}/next`);
  if (status === 404) { localStorage.removeItem(KEY); show("consent"); return; }
  if (status !== 200) { fail(data.error); return; }
  progress(data);
  if (data.done) { show("done"); return; }
  show("trial");
  $("phase").textContent = data.kind === "training" ?
      `Training (${data.voted + 1} of ${data.training}): ${QUESTION[0].toLowerCase()}` +
          QUESTION.slice(1) : QUESTION;
  $("feedback").textContent = "";
  const imgs = [[$("left"), data.left], [$("right"), data.right]];
  referenceShown = Boolean(data.reference);
  if (!TWO_AFC) $("reference-row").hidden = !referenceShown;
  if (data.reference) imgs.push([$("reference"), data.reference]);
  for (const [img, url] of imgs) { img.style.visibility = "hidden"; img.src = url; }
  await Promise.all(imgs.map(([img]) => loaded(img)));
  for (const [img] of imgs) { placeOneToOne(img); img.style.visibility = "visible"; }
  current = {trial: data.trial, kind: data.kind, shownAt: performance.now(), sid};
  $("trial").dataset.ready = String(data.trial);  // The pair on screen can be judged now.
  checkWindow();
}

async function vote(choice) {
  if (!current || busy || !$("warning").hidden) return;
  busy = true;
  delete $("trial").dataset.ready;
  const body = {session: current.sid, trial: current.trial, choice,
                response_ms: Math.round(performance.now() - current.shownAt),
                display: display(shownOneToOne())};
  const {status, data} = await api("POST", "/api/vote", body);
  busy = false;
  if (status === 409 && data.reasons) {
    // Display refused: the trial stays pending; the subject fixes the window and clicks again.
    $("trial").dataset.ready = String(current.trial);
    $("warning").textContent = data.error;
    $("warning").hidden = false;
    return;
  }
  if (status !== 200 && status !== 409) { fail(data.error); return; }
  const sid = current.sid;
  current = null;
  if ("correct" in data) {
    $("feedback").textContent = data.correct ? "Correct." :
        `Not quite: the other one was ${TWO_AFC ? "closer" : "better"}.`;
    await new Promise((r) => setTimeout(r, 700));
  }
  await nextTrial(sid);
}

// Client-side hint only: the server re-checks the display with every vote.
function checkWindow() {
  const ok = current === null || shownOneToOne();
  $("warning").hidden = ok;
  if (!ok) {
    $("warning").textContent = "The pictures cannot be shown pixel for pixel: " +
        "reset the zoom to 100 % and enlarge the window.";
  }
}

async function start() {
  $("start").disabled = true;
  const {status, data} = await api(
      "POST", "/api/session",
      {consent: true, display: display(), user_agent: navigator.userAgent});
  if (status === 403) {
    $("refused-reason").textContent = data.error;
    show("refused");
    return;
  }
  if (status !== 200) { fail(data.error); return; }
  localStorage.setItem(KEY, data.session);
  await nextTrial(data.session);
}

async function main() {
  $("consent-box").addEventListener("change", () => {
    $("start").disabled = !$("consent-box").checked;
  });
  $("start").addEventListener("click", start);
  $("left").addEventListener("click", () => vote("left"));
  $("right").addEventListener("click", () => vote("right"));
  window.addEventListener("resize", checkWindow);
  $("warning").addEventListener("click", checkWindow);
  const sid = localStorage.getItem(KEY);
  if (sid) { await nextTrial(sid); } else { show("consent"); }
}

main();
