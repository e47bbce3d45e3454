// neurolace dashboard: live session view over a WebSocket, browser Webgrid, scores.
// Plain JS and canvas, no build step. window.neurolace exposes counters for tests and benchmarks, the
// authenticated api() and two hook lists other scripts (charts, inspector) use without editing this file:
// neurolace.hooks.frame: f(header, channels) for every frame received; neurolace.hooks.draw: f(header, channels)
// after each drawn frame; neurolace.hooks.session: f(snapshot) after each session snapshot.
"use strict";

const state = {
  token: null, user: null, sessionId: null, ws: null, pending: null, session: null,
  series: [], latency: [], blocksSeen: -1, smoothed: null, run: null, lastT: null,
  bins: [], lastBinIndex: null, decoder: null,
};
const stats = { framesReceived: 0, framesDrawn: 0, wsBytes: 0, fps: 0, wsBytesPerS: 0, cursorMoves: 0,
                lastHeader: null, cursorHistory: [], binsReceived: 0, rasterColumns: 0, rasterGaps: 0,
                seriesResets: 0 };
// the connection to the server: lost when the socket closes, a request cannot reach the server, or nothing
// (frame or pong) arrived for HEARTBEAT_LOST_MS; reconnects with backoff until the server answers again
const HEARTBEAT_MS = 1000, HEARTBEAT_LOST_MS = 2500, BACKOFF_MS = [500, 1000, 2000, 4000, 5000];
const conn = { lost: false, reason: "", retries: 0, lastMessageMs: 0, timer: null, lostCount: 0 };
// The server lights one cell at a time and times every click on arrival: game.target is the cell the
// last reply lit; clicks go out in order (game.queue) and game.inFlight counts those not answered yet.
const game = { running: false, gridSide: 30, target: null, clicks: 0, correct: 0, wrong: 0, inFlight: 0,
               queue: Promise.resolve(), result: null, error: null, startedMs: 0, durationS: 0, gameId: null,
               flash: null };
const hooks = { frame: [], draw: [], session: [] };
window.neurolace = { stats, game, state, conn, hooks, api: (...args) => api(...args) };

const $ = (id) => document.getElementById(id);
const RUNNING_STATES = ["starting", "calibrating", "decoding"];

function callHooks(list, ...args) {
  for (const hook of list) {
    try { hook(...args); } catch (error) { console.error("neurolace hook failed", error); }
  }
}

// ---------------------------------------------------------------------------------------- auth
function showLogin(message) {
  $("login").hidden = false;
  $("app").hidden = true;
  $("login-error").textContent = message || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (error) {  // no answer at all: the server is down or unreachable
    connectionLost("the server does not answer");
    throw new Error("connection lost: the server does not answer");
  }
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (response.status === 401) {
    sessionStorage.removeItem("neurolace.token");
    state.token = null;
    showLogin((body && body.detail) || "please sign in");
  }
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail || response.statusText));
  }
  return body;
}

// The role decides what shows: an element with data-needs="ACTION" shows only when the server lists ACTION
// for this user (GET /api/me "actions"); a participant sees no controls at all.
function applyRole() {
  const actions = (state.user && state.user.actions) || [];
  document.body.dataset.role = state.user ? state.user.role : "";
  document.querySelectorAll("[data-needs]").forEach((element) => {
    element.hidden = !actions.includes(element.dataset.needs);
  });
  $("controls").hidden = actions.length === 0;
}

function closeSocket() {
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
}

async function useToken(token) {
  closeSocket();
  state.token = token;
  try {
    state.user = await api("/api/me");
  } catch (error) {
    return;
  }
  sessionStorage.setItem("neurolace.token", token);
  $("who").textContent = `${state.user.name} (${state.user.role})`;
  $("btn-logout").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  applyRole();
  await loadSessions();
}

// Sign out: the server revokes this token (only this one) and closes its live socket.
async function logout() {
  try { await api("/api/logout", { method: "POST" }); } catch (error) { /* already invalid: sign out anyway */ }
  closeSocket();
  state.token = null;
  state.user = null;
  sessionStorage.removeItem("neurolace.token");
  $("who").textContent = "";
  $("btn-logout").hidden = true;
  applyRole();
  showLogin("signed out");
}
$("btn-logout").addEventListener("click", logout);

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const reply = await api("/api/login", { method: "POST",
      body: JSON.stringify({ username: form.get("username"), password: form.get("password") }) });
    await useToken(reply.token);
  } catch (error) { $("login-error").textContent = error.message; }
});
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useToken(new FormData(event.target).get("token").trim());
});

// ---------------------------------------------------------------------------------------- tabs
document.querySelectorAll("button.tab").forEach((button) => button.addEventListener("click", () => {
  document.querySelectorAll("button.tab").forEach((b) => b.classList.toggle("active", b === button));
  document.querySelectorAll(".page").forEach((page) => { page.hidden = page.id !== "tab-" + button.dataset.tab; });
  if (button.dataset.tab === "scores") loadScores();
}));

// ---------------------------------------------------------------------------------------- colour map
const LUT = (() => {
  const stops = [[0, [11, 16, 22]], [0.25, [40, 11, 84]], [0.5, [159, 42, 99]], [0.75, [245, 125, 21]], [1, [252, 255, 164]]];
  const table = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    let k = 0;
    while (k < stops.length - 2 && v > stops[k + 1][0]) k++;
    const [v0, c0] = stops[k], [v1, c1] = stops[k + 1];
    const f = (v - v0) / (v1 - v0);
    for (let j = 0; j < 3; j++) table[i * 4 + j] = c0[j] + f * (c1[j] - c0[j]);
    table[i * 4 + 3] = 255;
  }
  return table;
})();

// ---------------------------------------------------------------------------------------- connection
function setControlsEnabled(enabled) {
  document.querySelectorAll("#controls button, #controls select, #controls input").forEach((element) => {
    element.disabled = !enabled;
  });
}

function connectionLost(reason) {
  if (!conn.lost) conn.lostCount++;
  conn.lost = true;
  conn.reason = reason;
  const banner = $("conn-banner");
  banner.textContent = `Connection lost: ${reason}. Reconnecting…`;
  banner.hidden = false;
  $("state").textContent = "connection lost";
  $("state").className = "pill lost";
  setControlsEnabled(false);
}

function connectionRestored() {
  conn.retries = 0;
  if (!conn.lost) return;
  conn.lost = false;
  conn.reason = "";
  $("conn-banner").hidden = true;
  setControlsEnabled(true);
  if (state.session) showSessionState(state.session);
}

// once a second: ask for a pong; nothing heard for HEARTBEAT_LOST_MS (a dead server sends no close) is a loss
setInterval(() => {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (performance.now() - conn.lastMessageMs > HEARTBEAT_LOST_MS) {
    connectionLost("no answer from the server for " + (HEARTBEAT_LOST_MS / 1000) + " s");
    state.ws = null;
    ws.close();
    scheduleReconnect(state.sessionId);
    return;
  }
  try { ws.send(JSON.stringify({ type: "ping", t: Date.now() })); } catch (error) { /* closing */ }
}, HEARTBEAT_MS);

function scheduleReconnect(sessionId) {
  clearTimeout(conn.timer);
  const delay = BACKOFF_MS[Math.min(conn.retries, BACKOFF_MS.length - 1)];
  conn.retries++;
  conn.timer = setTimeout(() => { if (!state.ws && state.token && state.sessionId === sessionId) connect(sessionId); },
                          delay);
}

// a #token= link followed in a tab that is already open: use the new token without a reload
window.addEventListener("hashchange", () => {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return;
  history.replaceState(null, "", location.pathname);
  useToken(token);
});

// ---------------------------------------------------------------------------------------- confirmation
// Start, Switch decoder and Stop act on a live participant: while the session runs they ask first.
function confirmAction(title, text) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = title;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

function sessionRunning() {
  const header = stats.lastHeader;
  const current = state.session && state.session.state;
  return RUNNING_STATES.includes(current) || (!!header && RUNNING_STATES.includes(header.state) && current !== "stopped");
}

// ---------------------------------------------------------------------------------------- live view
async function loadSessions() {
  const sessions = await api("/api/sessions");
  const select = $("session-select");
  select.innerHTML = "";
  for (const s of sessions) {
    const option = document.createElement("option");
    option.value = s.session_id;
    option.textContent = `${s.session_id} (${s.participant_id})`;
    select.appendChild(option);
  }
  if (sessions.length) connect(sessions[0].session_id);
  else $("state").textContent = "no session visible to you";
}
$("session-select").addEventListener("change", (event) => connect(event.target.value));

function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` : `${s} s`;
}

const STAGE_TEXT = { collecting: "collecting observation data", fitting: "fitting the decoder",
                     closed_loop: "first decoder in closed loop", refit: "ReFIT check block" };

// the calibration's stage and countdown, the recorder and the active decoder, from a frame header or a snapshot
function showSessionState(source) {
  if (!conn.lost && source.state) {
    $("state").textContent = source.state;
    $("state").className = "pill " + source.state;
  }
  if (source.decoder) showDecoder(source.decoder);
  const calibration = source.calibration;
  const box = $("calibration-box");
  if (!calibration || source.state === "stopped" || source.state === "failed") {
    box.hidden = true;
  } else {
    box.hidden = false;
    let text;
    if (calibration.stage === "done") {
      text = "calibration done";
    } else if (calibration.stage === "fitting") {
      if (state.fittingSince === undefined || state.fittingSince === null) state.fittingSince = performance.now();
      const fitting = (performance.now() - state.fittingSince) / 1000;
      text = `fitting the decoder (${calibration.block}), ${fitting.toFixed(0)} s so far; ` +
             `calibration ${formatSeconds(calibration.remaining_s)} left`;
    } else {
      text = `${STAGE_TEXT[calibration.stage] || calibration.stage}: ${formatSeconds(calibration.stage_remaining_s)} ` +
             `left; calibration ${formatSeconds(calibration.remaining_s)} left`;
      if (calibration.speed !== null && calibration.speed < 0.9) text += ` (running at ${calibration.speed.toFixed(2)}x real time)`;
    }
    if (calibration.stage !== "fitting") state.fittingSince = null;
    $("calibration-status").textContent = text;
    $("calibration-status").dataset.stage = calibration.stage;
    $("calibration-progress").value = calibration.progress;
  }
  const recorder = source.recorder;
  const status = $("recorder-status");
  if (!recorder) {
    status.textContent = "no recorder in this session";
    status.dataset.recording = "none";
  } else {
    const size = recorder.bytes >= 1e6 ? `${(recorder.bytes / 1e6).toFixed(1)} MB` : `${(recorder.bytes / 1e3).toFixed(0)} kB`;
    status.textContent = `${recorder.recording ? "● recording" : "recorded"} ${recorder.file}, ` +
      `${formatSeconds(recorder.elapsed_s)}, ${recorder.messages} messages, ${size}` + (recorder.recording ? "" : " (stopped)");
    status.dataset.recording = recorder.recording ? "on" : "off";
  }
}

// the dropdown follows the active decoder when it changes (not on every frame: a choice being made stays)
function showDecoder(name) {
  $("decoder").textContent = name || "-";
  const select = $("decoder-select");
  if (name && (name !== state.decoder || !select.value)) select.value = name;
  state.decoder = name;
}

async function refreshSession() {
  if (!state.sessionId) return;
  const snapshot = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}`);
  applySnapshot(snapshot);
}

function applySnapshot(snapshot) {
  // runs only count up: a snapshot of an earlier run (a slow reply overtaken by a restart) is stale
  if (state.run !== null && snapshot.run < state.run) return;
  state.session = snapshot;
  if (snapshot.run !== state.run) startNewRun(snapshot.run);
  state.series = snapshot.series.slice();
  const decoders = $("decoder-select");
  if (!decoders.options.length) {
    for (const name of snapshot.decoders) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      decoders.appendChild(option);
    }
  }
  $("calibration-s").value = snapshot.calibration_s;
  showSessionState(snapshot);
  renderBlocks(snapshot);
  callHooks(hooks.session, snapshot);
}

// a new run of the graph (Start calibration, Switch decoder): its time restarts at 0, so do the charts
function startNewRun(run) {
  state.run = run;
  state.series = [];
  state.latency = [];
  state.lastT = null;
  state.lastBinIndex = null;
  stats.cursorHistory = [];
  stats.seriesResets++;
}

function connect(sessionId) {
  closeSocket();
  clearTimeout(conn.timer);
  state.sessionId = sessionId;
  state.blocksSeen = -1;
  refreshSession().catch(() => {});
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/sessions/${encodeURIComponent(sessionId)}`,
                           ["neurolace.v1", "bearer." + state.token]);
  ws.binaryType = "arraybuffer";
  conn.lastMessageMs = performance.now();
  ws.onmessage = (event) => {
    if (state.ws !== ws) return;
    conn.lastMessageMs = performance.now();
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "hello") {
        connectionRestored();
        applySnapshot(message.session);
      } else if (message.type === "error") $("control-error").textContent = message.reason;
      return;
    }
    connectionRestored();
    stats.wsBytes += event.data.byteLength;
    stats.framesReceived++;
    const view = new DataView(event.data);
    const length = view.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 4, length)));
    const channels = new Uint8Array(event.data, 4 + length);
    state.pending = { header, channels };
    // every bin goes to the raster and the heat map, also when two arrive within one display refresh
    stats.binsReceived++;
    state.bins.push({ run: header.run, binIndex: header.bin_index, counts: channels.subarray(0, header.n_channels) });
    if (state.bins.length > 2 * RASTER_WIDTH) state.bins.splice(0, state.bins.length - 2 * RASTER_WIDTH);
    callHooks(hooks.frame, header, channels);
  };
  // 4401: the token no longer holds (expired, revoked, signed out); 4403: access withdrawn. Neither is
  // retried (a retry would only be refused again); anything else is a lost connection, retried with backoff.
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (event.code === 4401) { showLogin(event.reason || "please sign in again"); return; }
    if (event.code === 4403) { $("state").textContent = event.reason || "access withdrawn"; return; }
    connectionLost(event.code === 1006 || event.code === 1001 || event.code === 1012 ? "the server went away"
                   : `the live connection closed (code ${event.code})`);
    scheduleReconnect(sessionId);
  };
  state.ws = ws;
}

async function control(body) {
  $("control-error").textContent = "";
  try {
    const snapshot = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}/control`,
                               { method: "POST", body: JSON.stringify(body) });
    applySnapshot(snapshot);
  } catch (error) { $("control-error").textContent = error.message; }
}

async function confirmedControl(body, title, text) {
  if (sessionRunning() && !(await confirmAction(title, text))) return;
  await control(body);
}

function participantName() {
  return (state.session && state.session.participant_id) || "the participant";
}

$("btn-start").addEventListener("click", () => confirmedControl(
  { action: "start", calibration_s: Number($("calibration-s").value) }, "Restart calibration",
  `The session of ${participantName()} is running. Starting a new calibration stops the current decoder and ` +
  `asks the participant to follow the cursor for ${Number($("calibration-s").value)} s.`));
$("btn-stop").addEventListener("click", () => confirmedControl({ action: "stop" }, "Stop session",
  `Stop the running session of ${participantName()}? The cursor stops and a timed block in progress is aborted.`));
$("btn-decoder").addEventListener("click", () => confirmedControl(
  { action: "decoder", decoder: $("decoder-select").value, calibration_s: Number($("calibration-s").value) },
  "Switch decoder", `Switching to ${$("decoder-select").value} restarts the calibration of ${participantName()}.`));
$("btn-block").addEventListener("click", () => control({ action: "block", duration_s: Number($("block-s").value) }));

// Export: the session's blocks, BPS series and latency samples as a JSON file (input of neurolace report)
$("btn-export").addEventListener("click", async () => {
  $("control-error").textContent = "";
  try {
    const data = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}/export`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 1)], { type: "application/json" }));
    link.download = `${state.sessionId}-export.json`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) { $("control-error").textContent = error.message; }
});

function drawWebgrid(canvas, side, target, cursor, trail) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#0b1016";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#1c2733";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let i = 1; i < side; i++) {
    const x = Math.round(i * w / side) + 0.5, y = Math.round(i * h / side) + 0.5;
    ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.moveTo(0, y); ctx.lineTo(w, y);
  }
  ctx.stroke();
  if (target && target[2] > 0) {
    ctx.fillStyle = "#4fc3f7";
    ctx.fillRect((target[0] - target[2] / 2) * w, (1 - target[1] - target[2] / 2) * h, target[2] * w, target[2] * h);
  }
  if (trail && trail.length > 1) {
    ctx.strokeStyle = "rgba(255,183,77,0.35)";
    ctx.beginPath();
    trail.forEach((p, i) => (i ? ctx.lineTo(p[0] * w, (1 - p[1]) * h) : ctx.moveTo(p[0] * w, (1 - p[1]) * h)));
    ctx.stroke();
  }
  if (cursor) {
    ctx.fillStyle = cursor[2] > 0.5 ? "#ef5350" : "#ffb74d";
    ctx.beginPath();
    ctx.arc(cursor[0] * w, (1 - cursor[1]) * h, 6, 0, 2 * Math.PI);
    ctx.fill();
  }
}

const heatImage = { canvas: document.createElement("canvas"), n: 0 };
const sbpImage = { canvas: document.createElement("canvas"), n: 0 };
// the raster keeps RASTER_WIDTH columns, one per bin: "last RASTER_WIDTH x bin width" is what it shows
const RASTER_WIDTH = 300;
const rasterImage = { canvas: document.createElement("canvas"), rows: 0 };
window.neurolace.rasterImage = rasterImage.canvas;
const GAP_COLOUR = [52, 58, 66];  // a bin the server skipped for this viewer (slow connection): shown, not hidden

function drawChannelMap(canvas, image, values, scale) {
  // D2 hook: charts.js draws channel maps with labels, a colour bar and flags when it is loaded
  if (window.neurolaceCharts) return window.neurolaceCharts.channelMap(canvas, image, values, scale);
  const n = values.length;
  const rows = 16, columns = Math.ceil(n / rows);
  if (image.n !== n) {
    image.canvas.width = columns; image.canvas.height = rows; image.n = n;
  }
  const ictx = image.canvas.getContext("2d");
  const data = ictx.createImageData(columns, rows);
  for (let c = 0; c < n; c++) {
    const level = Math.min(255, Math.round(values[c] * scale)) * 4;
    const offset = ((c % rows) * columns + Math.floor(c / rows)) * 4;
    data.data[offset] = LUT[level]; data.data[offset + 1] = LUT[level + 1];
    data.data[offset + 2] = LUT[level + 2]; data.data[offset + 3] = 255;
  }
  ictx.putImageData(data, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image.canvas, 0, 0, canvas.width, canvas.height);
}

// columns: one entry per bin, oldest first: the bin's counts (Uint8Array), or null for a skipped bin
function drawRaster(canvas, columns, n) {
  const k = Math.min(columns.length, RASTER_WIDTH);
  if (!k) return;
  const rows = Math.ceil(n / 4), image = rasterImage;
  if (image.rows !== rows) {
    image.canvas.width = RASTER_WIDTH; image.canvas.height = rows; image.rows = rows;
  }
  const ictx = image.canvas.getContext("2d");
  ictx.globalCompositeOperation = "copy";
  ictx.drawImage(image.canvas, -k, 0);
  ictx.globalCompositeOperation = "source-over";
  const block = ictx.createImageData(k, rows), pixels = block.data;
  const shown = columns.slice(columns.length - k);
  for (let j = 0; j < k; j++) {
    const counts = shown[j];
    for (let r = 0; r < rows; r++) {
      const offset = (r * k + j) * 4;
      if (counts === null) {
        pixels[offset] = GAP_COLOUR[0]; pixels[offset + 1] = GAP_COLOUR[1]; pixels[offset + 2] = GAP_COLOUR[2];
      } else {
        let sum = 0;
        for (let c = r * 4; c < Math.min(n, r * 4 + 4); c++) sum += counts[c];
        const level = Math.min(255, sum * 32) * 4;
        pixels[offset] = LUT[level]; pixels[offset + 1] = LUT[level + 1]; pixels[offset + 2] = LUT[level + 2];
      }
      pixels[offset + 3] = 255;
    }
  }
  ictx.putImageData(block, RASTER_WIDTH - k, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image.canvas, 0, 0, canvas.width, canvas.height);
}

function drawLines(canvas, points, series) {
  // D2 hook: charts.js draws line charts with time axes and value scales with units when it is loaded
  if (window.neurolaceCharts) return window.neurolaceCharts.lines(canvas, points, series);
  // series: [{index, color, max}] of columns of points ([t, a, b, ...])
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#0b1016";
  ctx.fillRect(0, 0, w, h);
  if (points.length < 2) return;
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  for (const s of series) {
    const max = s.max || Math.max(1e-9, ...points.map((p) => p[s.index] || 0)) * 1.15;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = (p[0] - t0) / Math.max(1e-9, t1 - t0) * (w - 40) + 2;
      const y = h - 4 - (p[s.index] || 0) / max * (h - 18);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(`${s.label} ${(points[points.length - 1][s.index] || 0).toFixed(s.digits)}`, w - 110, 12 + 14 * series.indexOf(s));
  }
}

function renderBlocks(snapshot) {
  const blocks = [];
  if (snapshot.summary && Array.isArray(snapshot.summary.blocks)) {
    for (const b of snapshot.summary.blocks) blocks.push(Object.assign({ source: "summary" }, b, { decoder: snapshot.summary.decoder }));
  }
  for (const b of snapshot.blocks) blocks.push(Object.assign({ source: "live" }, b));
  const body = $("blocks-table").querySelector("tbody");
  body.innerHTML = "";
  for (const b of blocks) {
    const row = document.createElement("tr");
    for (const value of [b.name, b.decoder || "-", Number(b.duration_s).toFixed(0), b.correct, b.incorrect,
                         Number(b.ntpm).toFixed(1), Number(b.bps).toFixed(2)]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
  const canvas = $("blocks-chart"), ctx = canvas.getContext("2d");
  ctx.fillStyle = "#0b1016";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const max = Math.max(1, ...blocks.map((b) => b.bps || 0));
  const width = canvas.width / Math.max(blocks.length, 1);
  blocks.forEach((b, i) => {
    const height = (b.bps || 0) / max * (canvas.height - 20);
    ctx.fillStyle = b.source === "live" ? "#4fc3f7" : "#ffb74d";
    ctx.fillRect(i * width + 4, canvas.height - height, width - 8, height);
    ctx.fillStyle = "#dfe6ee";
    ctx.fillText((b.bps || 0).toFixed(2), i * width + 6, canvas.height - height - 4);
  });
  state.blocksSeen = snapshot.blocks.length;
}

// everything a frame header says, drawn once per display refresh; bins: every bin received since the last one
function drawFrame(frame, bins) {
  const { header, channels } = frame;
  if (header.run !== state.run || (state.lastT !== null && header.t_s < state.lastT)) startNewRun(header.run);
  state.lastT = header.t_s;
  const n = header.n_channels;
  const cursor = header.cursor;
  const last = stats.cursorHistory[stats.cursorHistory.length - 1];
  if (!last || last[0] !== cursor[0] || last[1] !== cursor[1]) stats.cursorMoves++;
  stats.cursorHistory.push(cursor);
  if (stats.cursorHistory.length > 40) stats.cursorHistory.shift();
  stats.lastHeader = header;
  drawWebgrid($("webgrid"), header.grid_side, header.target, cursor, stats.cursorHistory);
  if (!state.smoothed || state.smoothed.length !== n) state.smoothed = new Float32Array(n);
  const smoothed = state.smoothed, columns = [];
  for (const bin of bins) {
    if (bin.counts.length !== n) continue;
    if (bin.run !== state.binRun) { state.binRun = bin.run; state.lastBinIndex = null; }
    if (state.lastBinIndex !== null && bin.binIndex > state.lastBinIndex + 1) {
      const gaps = Math.min(bin.binIndex - state.lastBinIndex - 1, RASTER_WIDTH);
      for (let g = 0; g < gaps; g++) columns.push(null);
      stats.rasterGaps += gaps;
    }
    state.lastBinIndex = bin.binIndex;
    columns.push(bin.counts);
    stats.rasterColumns++;
    for (let c = 0; c < n; c++) smoothed[c] += 0.25 * (bin.counts[c] - smoothed[c]);
  }
  drawChannelMap($("heatmap"), heatImage, smoothed, 120);
  drawRaster($("raster"), columns, n);
  const binMs = header.bin_ms || 20;
  $("raster-label").textContent = `last ${(RASTER_WIDTH * binMs / 1000).toFixed(0)} s (one column per ${binMs} ms bin), ` +
                                  "4 channels per row";
  if (header.sbp_scale !== null && channels.length >= 2 * n) {
    drawChannelMap($("sbp"), sbpImage, channels.subarray(n, 2 * n), 1);
    $("sbp-note").textContent = `full scale ${header.sbp_scale.toFixed(1)} µV²`;
  } else {
    $("sbp-note").textContent = "not on this session's feature stream: the simulated participant emits counts only; " +
      "a session with a dsp node (feature = 'both') shows spike-band power here.";
  }
  for (const point of header.series) {
    if (!state.series.length || point[0] > state.series[state.series.length - 1][0]) state.series.push(point);
  }
  if (state.series.length > 600) state.series.splice(0, state.series.length - 600);
  drawLines($("bps-chart"), state.series, [{ index: 2, color: "#4fc3f7", label: "BPS", digits: 2 },
                                          { index: 1, color: "#ffb74d", label: "NTPM", digits: 1 }]);
  const latency = header.latency_ms;
  if (latency.last !== null) state.latency.push([header.t_s, latency.last]);
  if (state.latency.length > 300) state.latency.shift();
  drawLines($("latency-chart"), state.latency, [{ index: 1, color: "#ef5350", label: "ms", digits: 2 }]);
  $("latency").textContent = latency.p50 === null ? "-" : `${latency.p50.toFixed(2)} ms p50, ${latency.p99.toFixed(2)} ms p99`;
  $("link").textContent = `${(header.link_bytes_per_s / 1024).toFixed(1)} kB/s`;
  const link = header.link;  // the secure link's health, when the session runs one
  $("link-health").textContent = !link ? "no secure link in this session" :
    `${link.established ? "sealed" : "handshaking"}: ${(link.uplink_bytes_per_s / 1024).toFixed(1)} kB/s on air, ` +
    `${link.delivered_bins} bins, ${link.missing_bins} missing, ${link.late_bins} late, ` +
    `${link.rejected_frames} frames rejected, ${link.rekeys} rekeys`;
  if (!state.session || state.session.state !== "stopped" || RUNNING_STATES.includes(header.state)) {
    if (state.session) state.session.state = header.state;
    showSessionState(header);
  }
  $("grid-label").textContent = `${header.grid_side} x ${header.grid_side}, t = ${header.t_s.toFixed(1)} s`;
  $("score").textContent = `${header.score[0]} correct, ${header.score[1]} wrong`;
  $("block-status").textContent = header.block ? `${header.block.name}: ${header.block.remaining_s.toFixed(0)} s left` : "";
  if (header.n_blocks !== state.blocksSeen) refreshSession().catch(() => {});
  callHooks(hooks.draw, header, channels);
}

// ---------------------------------------------------------------------------------------- browser Webgrid
function drawGame() {
  const canvas = $("play-canvas");
  const side = game.gridSide;
  const cell = game.target;
  let target = null;
  if (game.running && cell !== null) {
    const row = Math.floor(cell / side), column = cell % side;
    target = [(column + 0.5) / side, (row + 0.5) / side, 1 / side];
  }
  drawWebgrid(canvas, side, target, null, null);
  if (game.flash && performance.now() - game.flash.at < 150) {
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = game.flash.correct ? "#66bb6a" : "#ef5350";
    ctx.lineWidth = 4;
    ctx.strokeRect(2, 2, canvas.width - 4, canvas.height - 4);
  }
}

function gameElapsedS() { return (performance.now() - game.startedMs) / 1000; }

$("btn-play").addEventListener("click", async () => {
  if (game.running) return;
  $("play-result").textContent = "";
  game.result = null; game.error = null;
  try {
    const issued = await api("/api/webgrid/games", { method: "POST", body: JSON.stringify({
      grid_side: Number($("play-grid").value), duration_s: Number($("play-seconds").value) }) });
    Object.assign(game, { running: true, gameId: issued.game_id, gridSide: issued.grid_side, target: issued.target,
                          durationS: issued.duration_s, clicks: 0, correct: 0, wrong: 0, inFlight: 0,
                          queue: Promise.resolve(), startedMs: performance.now() });
  } catch (error) { game.error = error.message; $("play-result").textContent = error.message; }
});

$("play-canvas").addEventListener("mousedown", (event) => {
  if (!game.running) return;
  const t = gameElapsedS();
  if (t > game.durationS) return;
  const rect = event.target.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
  const y = Math.min(1, Math.max(0, 1 - (event.clientY - rect.top) / rect.height));
  const gameId = game.gameId;
  game.clicks++;
  game.inFlight++;
  game.queue = game.queue.then(async () => {
    try {
      const reply = await api(`/api/webgrid/games/${encodeURIComponent(gameId)}/clicks`, { method: "POST",
        body: JSON.stringify({ x, y }) });
      if (game.gameId !== gameId) return;
      game.target = reply.target;
      game.correct = reply.correct_total;
      game.wrong = reply.incorrect_total;
      game.flash = { at: performance.now(), correct: reply.correct };
    } catch (error) {
      $("play-result").textContent = "Click not counted: " + error.message;
    } finally { game.inFlight--; }
  });
});

async function finishGame() {
  game.running = false;
  try {
    await game.queue;  // every click answered before the score is asked for
    const result = await api(`/api/webgrid/games/${encodeURIComponent(game.gameId)}/finish`, { method: "POST" });
    game.result = result;
    $("play-bps").textContent = result.bps.toFixed(2);
    $("play-result").textContent = `Server-verified: ${result.correct} correct, ${result.incorrect} wrong, ` +
      `${result.ntpm.toFixed(1)} NTPM, ${result.bps.toFixed(2)} bits per second on ${result.grid_side} x ${result.grid_side}.`;
  } catch (error) { game.error = error.message; $("play-result").textContent = "Not scored: " + error.message; }
}

function updateGame() {
  if (!game.running) return;
  const t = gameElapsedS();
  $("play-time").textContent = `${Math.max(0, game.durationS - t).toFixed(1)} s`;
  $("play-correct").textContent = game.correct;
  $("play-wrong").textContent = game.wrong;
  const minutes = Math.max(t, 1e-3) / 60;
  const ntpm = Math.max(0, game.correct - game.wrong) / minutes;
  $("play-bps").textContent = (ntpm / 60 * Math.log2(game.gridSide * game.gridSide - 1)).toFixed(2);
  // the server checks the game lasted its full length: submit a little after the end
  if (t >= game.durationS + 0.25) finishGame();
}

async function loadScores() {
  const reply = await api("/api/webgrid/scores");
  const fill = (table, rows) => {
    const body = $(table).querySelector("tbody");
    body.innerHTML = "";
    for (const values of rows) {
      const row = document.createElement("tr");
      for (const value of values) { const cell = document.createElement("td"); cell.textContent = value; row.appendChild(cell); }
      body.appendChild(row);
    }
  };
  fill("scores-table", reply.scores.map((s) => [s.user, s.grid_side, s.duration_s, s.correct, s.incorrect,
                                                 s.ntpm.toFixed(1), s.bps.toFixed(2)]));
  fill("decoder-table", reply.decoder_blocks.map((b) => [b.session_id, b.name, b.decoder, b.grid_side,
                                                         b.ntpm.toFixed(1), b.bps.toFixed(2)]));
}

// ---------------------------------------------------------------------------------------- animation loop
let lastSecond = performance.now(), framesAtSecond = 0, bytesAtSecond = 0;
function animate(now) {
  if (state.pending) {
    const frame = state.pending, bins = state.bins;
    state.pending = null;
    state.bins = [];
    drawFrame(frame, bins);
    stats.framesDrawn++;
  } else if (state.fittingSince && state.session && state.session.calibration) {
    // no frames while the node fits (the loop waits for it): keep the fitting clock moving
    if (now - (state.fitShownMs || 0) > 500) { state.fitShownMs = now; showSessionState(stats.lastHeader || state.session); }
  }
  if (!$("tab-play").hidden || game.running) { drawGame(); updateGame(); }
  if (now - lastSecond >= 1000) {
    const seconds = (now - lastSecond) / 1000;
    stats.fps = (stats.framesDrawn - framesAtSecond) / seconds;
    stats.wsBytesPerS = (stats.wsBytes - bytesAtSecond) / seconds;
    framesAtSecond = stats.framesDrawn; bytesAtSecond = stats.wsBytes; lastSecond = now;
    $("fps").textContent = `${stats.fps.toFixed(0)} frames/s`;
    $("ws-rate").textContent = `${(stats.wsBytesPerS / 1024).toFixed(1)} kB/s`;
  }
  requestAnimationFrame(animate);
}
requestAnimationFrame(animate);

// ---------------------------------------------------------------------------------------- start
(function start() {
  applyRole();
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const token = fromHash || sessionStorage.getItem("neurolace.token");
  if (token) useToken(token); else showLogin();
})();
