// neurolace dashboard: live session view over a WebSocket, browser Webgrid, scores.
// Plain JS and canvas, no build step. window.neurolace exposes counters for tests and benchmarks.
"use strict";

const state = {
  token: null, user: null, sessionId: null, ws: null, pending: null, session: null,
  series: [], latency: [], blocksSeen: -1, smoothed: null,
};
const stats = { framesReceived: 0, framesDrawn: 0, wsBytes: 0, fps: 0, wsBytesPerS: 0, cursorMoves: 0,
                lastHeader: null, cursorHistory: [] };
// The server lights one cell at a time and times every click on arrival: game.target is the cell the
// last reply lit; clicks go out in order (game.queue) and game.inFlight counts those not answered yet.
const game = { running: false, gridSide: 30, target: null, clicks: 0, correct: 0, wrong: 0, inFlight: 0,
               queue: Promise.resolve(), result: null, error: null, startedMs: 0, durationS: 0, gameId: null,
               flash: null };
window.neurolace = { stats, game, state };

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------- auth
function showLogin(message) {
  $("login").hidden = false;
  $("app").hidden = true;
  $("login-error").textContent = message || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
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

async function useToken(token) {
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
  await loadSessions();
}

// Sign out: the server revokes this token (only this one) and closes its live socket.
async function logout() {
  try { await api("/api/logout", { method: "POST" }); } catch (error) { /* already invalid: sign out anyway */ }
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
  state.token = null;
  state.user = null;
  sessionStorage.removeItem("neurolace.token");
  $("who").textContent = "";
  $("btn-logout").hidden = true;
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

async function refreshSession() {
  if (!state.sessionId) return;
  const snapshot = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}`);
  state.session = snapshot;
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
  renderBlocks(snapshot);
}

function connect(sessionId) {
  if (state.ws) state.ws.close();
  state.sessionId = sessionId;
  state.blocksSeen = -1;
  refreshSession().catch(() => {});
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/sessions/${encodeURIComponent(sessionId)}`,
                           ["neurolace.v1", "bearer." + state.token]);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "error") $("control-error").textContent = message.reason;
      return;
    }
    stats.wsBytes += event.data.byteLength;
    stats.framesReceived++;
    const view = new DataView(event.data);
    const length = view.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 4, length)));
    state.pending = { header, channels: new Uint8Array(event.data, 4 + length) };
  };
  // 4401: the token no longer holds (expired, revoked, signed out); 4403: access withdrawn. Neither is
  // retried (a retry would only be refused again); anything else reconnects after a second.
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    if (event.code === 4401) { state.ws = null; showLogin(event.reason || "please sign in again"); return; }
    if (event.code === 4403) { state.ws = null; $("state").textContent = event.reason || "access withdrawn"; return; }
    setTimeout(() => { if (state.ws === ws && state.token) connect(sessionId); }, 1000);
  };
  state.ws = ws;
}

async function control(body) {
  $("control-error").textContent = "";
  try {
    state.session = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}/control`,
                              { method: "POST", body: JSON.stringify(body) });
    renderBlocks(state.session);
  } catch (error) { $("control-error").textContent = error.message; }
}
$("btn-start").addEventListener("click", () => control({ action: "start", calibration_s: Number($("calibration-s").value) }));
$("btn-stop").addEventListener("click", () => control({ action: "stop" }));
$("btn-decoder").addEventListener("click", () => control({ action: "decoder", decoder: $("decoder-select").value,
                                                           calibration_s: Number($("calibration-s").value) }));
$("btn-block").addEventListener("click", () => control({ action: "block", duration_s: Number($("block-s").value) }));

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
const rasterImage = { canvas: document.createElement("canvas"), rows: 0 };

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

function drawRaster(canvas, counts) {
  const n = counts.length, rows = Math.ceil(n / 4), width = 300;
  const image = rasterImage;
  if (image.rows !== rows) {
    image.canvas.width = width; image.canvas.height = rows; image.rows = rows;
    image.column = image.canvas.getContext("2d").createImageData(1, rows);
  }
  const ictx = image.canvas.getContext("2d");
  ictx.drawImage(image.canvas, -1, 0);
  const column = image.column.data;
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let k = r * 4; k < Math.min(n, r * 4 + 4); k++) sum += counts[k];
    const level = Math.min(255, sum * 32) * 4;
    column[r * 4] = LUT[level]; column[r * 4 + 1] = LUT[level + 1]; column[r * 4 + 2] = LUT[level + 2]; column[r * 4 + 3] = 255;
  }
  ictx.putImageData(image.column, width - 1, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
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

function drawFrame(frame) {
  const { header, channels } = frame;
  const n = header.n_channels;
  const counts = channels.subarray(0, n);
  const cursor = header.cursor;
  const last = stats.cursorHistory[stats.cursorHistory.length - 1];
  if (!last || last[0] !== cursor[0] || last[1] !== cursor[1]) stats.cursorMoves++;
  stats.cursorHistory.push(cursor);
  if (stats.cursorHistory.length > 40) stats.cursorHistory.shift();
  stats.lastHeader = header;
  drawWebgrid($("webgrid"), header.grid_side, header.target, cursor, stats.cursorHistory);
  if (!state.smoothed || state.smoothed.length !== n) state.smoothed = new Float32Array(n);
  const smoothed = state.smoothed;
  for (let c = 0; c < n; c++) smoothed[c] += 0.25 * (counts[c] - smoothed[c]);
  drawChannelMap($("heatmap"), heatImage, smoothed, 120);
  drawRaster($("raster"), counts);
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
  $("state").textContent = header.state;
  $("state").className = "pill " + header.state;
  $("decoder").textContent = header.decoder || "-";
  $("grid-label").textContent = `${header.grid_side} x ${header.grid_side}, t = ${header.t_s.toFixed(1)} s`;
  $("score").textContent = `${header.score[0]} correct, ${header.score[1]} wrong`;
  $("block-status").textContent = header.block ? `${header.block.name}: ${header.block.remaining_s.toFixed(0)} s left` : "";
  if (header.n_blocks !== state.blocksSeen) refreshSession().catch(() => {});
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
    const frame = state.pending;
    state.pending = null;
    drawFrame(frame);
    stats.framesDrawn++;
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
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const token = fromHash || sessionStorage.getItem("neurolace.token");
  if (token) useToken(token); else showLogin();
})();
