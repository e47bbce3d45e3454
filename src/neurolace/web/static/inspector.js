// neurolace channel inspector: click a channel on the heat map, the raster or the thread map to see its spike
// snippets with the threshold, its rate over time, a filtered trace with µV and time scale bars and its noise;
// researchers set the threshold multiple and mask channels (the mask reaches the decoder). Also the per-thread
// summary of all 64 threads and the page's aria-live summary. Server side: web/inspect.py.
// window.neurolaceInspector: open(channel), close(), state (for tests and benchmarks).
"use strict";

(function () {
  const app = window.neurolace, charts = window.neurolaceCharts;
  if (!app || !app.hooks || !app.api || !charts) return;  // needs app.js with its hooks (neurolace.hooks, api)
  const $ = (id) => document.getElementById(id);
  const ELECTRODES = 16, THREAD_SIDE = 8;
  const POLL_MS = 500, STATE_POLL_MS = 2000, SUMMARY_MS = 5000;
  const inspector = { channel: null, view: null, inspectorState: null, polls: 0, errors: 0, rates: null, nChannels: 0,
                      binS: 0.02, timer: null };

  const sessionPath = () => `/api/sessions/${encodeURIComponent(app.state.sessionId)}`;
  const isResearcher = () => app.state.user && app.state.user.role === "researcher";

  // ------------------------------------------------------------------------------------------- data
  async function pollChannel() {
    if (inspector.channel === null || !app.state.sessionId) return;
    try {
      inspector.view = await app.api(`${sessionPath()}/channels/${inspector.channel}`);
      inspector.polls++;
      $("inspector-error").textContent = "";
      render();
    } catch (error) { inspector.errors++; $("inspector-error").textContent = error.message; }
  }

  async function pollState() {
    if (!app.state.sessionId || !app.state.token) return;
    try {
      const state = await app.api(`${sessionPath()}/inspector`);
      inspector.inspectorState = state;
      charts.flagState.flags = state.flags;
      charts.flagState.masked = state.masked;
      charts.flagState.rules = state.flag_rules;
      renderFlags(state);
    } catch (error) { /* the connection banner (app.js) says when the server is gone */ }
  }
  setInterval(pollState, STATE_POLL_MS);
  setInterval(pollChannel, POLL_MS);

  // every frame: a running mean of each channel's count per bin (the thread map)
  app.hooks.frame.push((header, channels) => {
    const n = header.n_channels;
    if (!inspector.rates || inspector.rates.length !== n) { inspector.rates = new Float32Array(n); inspector.nChannels = n; }
    inspector.binS = (header.bin_ms || 20) / 1000;
    const rates = inspector.rates;
    for (let c = 0; c < n; c++) rates[c] += 0.02 * (channels[c] - rates[c]);
  });
  app.hooks.draw.push(() => { if (!$("thread-map").closest("[hidden]")) drawThreadMap(); });

  // ------------------------------------------------------------------------------------------- open / close
  function open(channel) {
    const n = inspector.nChannels || (app.stats.lastHeader && app.stats.lastHeader.n_channels) || 1024;
    channel = Math.max(0, Math.min(n - 1, Math.round(Number(channel))));
    if (!Number.isFinite(channel)) return;
    inspector.channel = channel;
    inspector.view = null;
    charts.flagState.selected = channel;
    $("inspector").hidden = false;
    $("inspector-input").value = channel;
    $("inspector-controls").hidden = !isResearcher();
    $("inspector-title-channel").textContent = `${channel} (thread ${Math.floor(channel / ELECTRODES)}, electrode ${channel % ELECTRODES})`;
    $("inspector-summary").textContent = `Loading channel ${channel}…`;
    pollChannel();
  }

  function close() {
    inspector.channel = null;
    inspector.view = null;
    charts.flagState.selected = null;
    $("inspector").hidden = true;
  }

  $("heatmap").addEventListener("click", (event) => {
    const n = inspector.nChannels || (app.stats.lastHeader && app.stats.lastHeader.n_channels);
    const channel = n ? charts.channelAt($("heatmap"), event.clientX, event.clientY, n) : null;
    if (channel !== null) open(channel);
  });
  $("raster").addEventListener("click", (event) => {
    const n = inspector.nChannels;
    if (!n) return;
    const canvas = $("raster"), box = canvas.getBoundingClientRect(), rect = charts.plotRect(canvas);
    const y = (event.clientY - box.top) * canvas.height / box.height;
    const row = Math.floor((y - rect.y) / rect.h * Math.ceil(n / 4));
    if (row >= 0 && row * 4 < n) open(row * 4);
  });
  $("thread-map").addEventListener("click", (event) => {
    const channel = threadMapChannel(event);
    if (channel !== null) open(channel);
  });
  $("inspector-close").addEventListener("click", close);
  $("inspector-go").addEventListener("click", () => open($("inspector-input").value));
  $("inspector-input").addEventListener("keydown", (event) => { if (event.key === "Enter") open(event.target.value); });

  async function change(path, body) {
    $("inspector-error").textContent = "";
    try {
      const reply = await app.api(`${sessionPath()}/inspector/${path}`, { method: "PUT", body: JSON.stringify(body) });
      await pollState();
      await pollChannel();
      return reply;
    } catch (error) { $("inspector-error").textContent = error.message; return null; }
  }
  $("inspector-threshold-apply").addEventListener("click", () => {
    if (inspector.channel !== null) change("threshold", { channel: inspector.channel, multiple: Number($("inspector-threshold").value) });
  });
  $("inspector-mask").addEventListener("click", () => {
    if (inspector.channel === null) return;
    const masked = !(inspector.view && inspector.view.masked);
    change("mask", { channels: [inspector.channel], masked });
  });

  // ------------------------------------------------------------------------------------------- drawing
  function render() {
    const view = inspector.view;
    if (!view) return;
    $("inspector-mask").textContent = view.masked ? "Unmask channel" : "Mask channel (the decoder sees 0)";
    $("inspector-mask").setAttribute("aria-pressed", view.masked ? "true" : "false");
    if (document.activeElement !== $("inspector-threshold")) $("inspector-threshold").value = view.threshold_multiple;
    const flags = view.flags.length ? view.flags.join(", ") : "none";
    if (!view.raw) {
      $("inspector-summary").textContent = `Channel ${view.channel}: ${view.raw_reason}. Flags: ${flags}.` +
        (view.masked ? " Masked for the decoder." : "");
      for (const id of ["inspector-snippets", "inspector-trace", "inspector-rate"]) {
        const canvas = $(id);
        charts.clear(canvas);
        charts.describe(canvas, `no data: ${view.raw_reason}`);
      }
      return;
    }
    const rateNow = view.rate.hz.slice(-10).reduce((a, b) => a + b, 0) / 10;
    $("inspector-summary").textContent = `Channel ${view.channel} (thread ${view.thread}, electrode ${view.electrode}): ` +
      `noise ${view.noise_uv === null ? "-" : view.noise_uv.toFixed(1)} µV RMS, threshold ` +
      `${view.threshold_multiple} × RMS = ${view.threshold_uv === null ? "-" : view.threshold_uv.toFixed(1)} µV, ` +
      `rate ${rateNow.toFixed(1)} Hz over the last second, ${view.snippets.uv.length} snippets. Flags: ${flags}.` +
      (view.masked ? " Masked: the decoder sees 0 on this channel." : "");
    drawSnippets($("inspector-snippets"), view);
    drawTrace($("inspector-trace"), view);
    drawRate($("inspector-rate"), view);
  }

  function extent(arrays, pad) {
    let lo = Infinity, hi = -Infinity;
    for (const array of arrays) for (const v of array) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (!(hi > lo)) { lo = -1; hi = 1; }
    const margin = (hi - lo) * pad;
    return [lo - margin, hi + margin];
  }

  function drawSnippets(canvas, view) {
    const ctx = charts.clear(canvas);
    const rect = charts.plotRect(canvas);
    const t = view.snippets.t_ms, snippets = view.snippets.uv;
    const threshold = view.threshold_uv || 0;
    let [lo, hi] = extent([...snippets, [threshold]], 0.1);
    charts.axes(ctx, rect, { x: { min: t[0], max: t[t.length - 1], label: "time from crossing (ms)" },
                             y: { min: lo, max: hi, label: "µV" } });
    const px = (i) => rect.x + (t[i] - t[0]) / (t[t.length - 1] - t[0]) * rect.w;
    const py = (v) => rect.y + rect.h - (v - lo) / (hi - lo) * rect.h;
    ctx.save();
    ctx.beginPath(); ctx.rect(rect.x, rect.y, rect.w, rect.h); ctx.clip();
    ctx.strokeStyle = "rgba(79,195,247,0.45)"; ctx.lineWidth = 1;
    for (const snippet of snippets) {
      ctx.beginPath();
      snippet.forEach((v, i) => (i ? ctx.lineTo(px(i), py(v)) : ctx.moveTo(px(i), py(v))));
      ctx.stroke();
    }
    ctx.strokeStyle = "#ff7043"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(rect.x, py(threshold)); ctx.lineTo(rect.x + rect.w, py(threshold)); ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#ff7043"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left";
    ctx.fillText(`threshold ${threshold.toFixed(1)} µV`, rect.x + 4, Math.min(rect.y + rect.h - 4, py(threshold) + 12));
    charts.describe(canvas, `${snippets.length} spike waveform snippets of channel ${view.channel}, ` +
      `${t[0].toFixed(1)} to ${t[t.length - 1].toFixed(1)} ms around each crossing, threshold ${threshold.toFixed(1)} µV`);
  }

  // the filtered trace with scale bars (µV and ms) instead of axes, as an electrophysiologist reads it
  function drawTrace(canvas, view) {
    const ctx = charts.clear(canvas);
    const trace = view.trace.uv;
    const rect = { x: 8, y: 8, w: canvas.width - 80, h: canvas.height - 16 };
    if (!trace.length) { charts.describe(canvas, "filtered trace: no samples yet"); return; }
    const threshold = view.threshold_uv || 0;
    let [lo, hi] = extent([trace, [threshold]], 0.05);
    const py = (v) => rect.y + rect.h - (v - lo) / (hi - lo) * rect.h;
    ctx.strokeStyle = "#4fc3f7"; ctx.lineWidth = 1;
    ctx.beginPath();
    trace.forEach((v, i) => { const x = rect.x + i / (trace.length - 1) * rect.w; if (i) ctx.lineTo(x, py(v)); else ctx.moveTo(x, py(v)); });
    ctx.stroke();
    ctx.strokeStyle = "#ff7043"; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(rect.x, py(threshold)); ctx.lineTo(rect.x + rect.w, py(threshold)); ctx.stroke();
    ctx.setLineDash([]);
    // scale bars: a round number of µV and of ms, bottom right
    const durationMs = trace.length * view.trace.dt_s * 1000;
    const barMs = charts.niceMax(durationMs / 5) >= durationMs ? durationMs / 5 : charts.niceMax(durationMs / 5);
    const barUv = charts.niceMax((hi - lo) / 4);
    const x1 = canvas.width - 10, y1 = canvas.height - 20;
    const barW = barMs / durationMs * rect.w, barH = barUv / (hi - lo) * rect.h;
    ctx.strokeStyle = charts.TEXT; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x1 - barW, y1); ctx.lineTo(x1, y1); ctx.lineTo(x1, y1 - barH); ctx.stroke();
    ctx.fillStyle = charts.TEXT; ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center"; ctx.fillText(`${barMs.toFixed(barMs < 1 ? 1 : 0)} ms`, x1 - barW / 2, y1 + 13);
    ctx.textAlign = "right"; ctx.fillText(`${barUv.toFixed(0)} µV`, x1 - 4, y1 - barH / 2);
    inspector.scaleBars = { ms: barMs, uv: barUv };
    charts.describe(canvas, `filtered trace of channel ${view.channel} (300-6000 Hz, common-average referenced), ` +
      `the last ${durationMs.toFixed(0)} ms, ${lo.toFixed(0)} to ${hi.toFixed(0)} µV; scale bars ${barMs.toFixed(0)} ms ` +
      `and ${barUv.toFixed(0)} µV; noise ${view.noise_uv === null ? "-" : view.noise_uv.toFixed(1)} µV RMS`);
  }

  function drawRate(canvas, view) {
    const ctx = charts.clear(canvas);
    const rect = charts.plotRect(canvas);
    const hz = view.rate.hz, chain = view.rate.chain_hz, bin = view.rate.bin_s;
    const smooth = (values) => values.map((_, i) => { const part = values.slice(Math.max(0, i - 4), i + 1); return part.reduce((a, b) => a + b, 0) / part.length; });
    const a = smooth(hz), b = smooth(chain);
    const max = charts.niceMax(Math.max(5, ...a, ...b) * 1.1);
    const span = hz.length * bin;
    charts.axes(ctx, rect, { x: { min: -span, max: 0, label: "time (s, 0 = now)" }, y: { min: 0, max, label: "rate (Hz)" } });
    const line = (values, colour, dash) => {
      ctx.save(); ctx.strokeStyle = colour; ctx.setLineDash(dash); ctx.lineWidth = 1.5; ctx.beginPath();
      values.forEach((v, i) => { const x = rect.x + (i + 0.5) / values.length * rect.w, y = rect.y + rect.h - v / max * rect.h; if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.stroke(); ctx.restore();
    };
    line(b, "#9aa8b8", [4, 3]);
    line(a, "#4fc3f7", []);
    ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right"; ctx.fillStyle = "#4fc3f7";
    ctx.fillText(`at ${view.threshold_multiple} × RMS`, rect.x + rect.w - 4, rect.y + 12);
    ctx.fillStyle = "#9aa8b8"; ctx.fillText("implant chain", rect.x + rect.w - 4, rect.y + 26);
    charts.describe(canvas, `rate of channel ${view.channel} over the last ${span.toFixed(0)} s: ` +
      `${a[a.length - 1].toFixed(1)} Hz now at the inspector's threshold, ${b[b.length - 1].toFixed(1)} Hz by the implant's chain`);
  }

  // 64 threads on the implant's 8 x 8 grid, each cell 16 electrode bars (height = rate); flags counted per thread
  function threadLayout(canvas) {
    const rect = { x: 4, y: 4, w: canvas.width - 8, h: canvas.height - 8 };
    return { rect, cellW: rect.w / THREAD_SIDE, cellH: rect.h / THREAD_SIDE };
  }

  function threadMapChannel(event) {
    const canvas = $("thread-map"), box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * canvas.width / box.width, y = (event.clientY - box.top) * canvas.height / box.height;
    const { rect, cellW, cellH } = threadLayout(canvas);
    const column = Math.floor((x - rect.x) / cellW), row = Math.floor((y - rect.y) / cellH);
    if (column < 0 || column >= THREAD_SIDE || row < 0 || row >= THREAD_SIDE) return null;
    const thread = row * THREAD_SIDE + column;
    const electrode = Math.min(ELECTRODES - 1, Math.max(0, Math.floor((x - rect.x - column * cellW - 3) / ((cellW - 6) / ELECTRODES))));
    const channel = thread * ELECTRODES + electrode;
    return channel < (inspector.nChannels || 1024) ? channel : null;
  }

  function drawThreadMap() {
    const canvas = $("thread-map");
    const rates = inspector.rates;
    if (!canvas || !rates) return;
    const ctx = charts.clear(canvas);
    const { rect, cellW, cellH } = threadLayout(canvas);
    const n = rates.length, nThreads = Math.ceil(n / ELECTRODES);
    const hz = Array.from(rates, (v) => v / inspector.binS);
    const max = charts.niceMax(Math.max(5, ...hz));
    const flags = charts.flagState.flags, flagged = new Set([...flags.dead, ...flags.noisy, ...flags.saturated]);
    const masked = new Set(charts.flagState.masked);
    const means = [];
    ctx.font = "10px system-ui, sans-serif";
    for (let thread = 0; thread < Math.min(nThreads, THREAD_SIDE * THREAD_SIDE); thread++) {
      const x = rect.x + (thread % THREAD_SIDE) * cellW, y = rect.y + Math.floor(thread / THREAD_SIDE) * cellH;
      let sum = 0, flaggedHere = 0;
      const barW = (cellW - 6) / ELECTRODES;
      for (let e = 0; e < ELECTRODES; e++) {
        const c = thread * ELECTRODES + e;
        if (c >= n) break;
        sum += hz[c];
        if (flagged.has(c)) flaggedHere++;
        const height = Math.min(1, hz[c] / max) * (cellH - 18);
        ctx.fillStyle = masked.has(c) ? "#55606c" : flagged.has(c) ? "#ffd54f" : "#4fc3f7";
        ctx.fillRect(x + 3 + e * barW, y + cellH - 3 - height, Math.max(1, barW - 1), height);
      }
      means.push(sum / ELECTRODES);
      ctx.strokeStyle = "#3d4b5c"; ctx.strokeRect(x + 0.5, y + 0.5, cellW - 1, cellH - 1);
      ctx.fillStyle = charts.TEXT; ctx.textAlign = "left"; ctx.textBaseline = "top";
      ctx.fillText(`T${thread} ${(sum / ELECTRODES).toFixed(0)} Hz${flaggedHere ? " !" + flaggedHere : ""}`, x + 3, y + 2);
    }
    inspector.threadMeans = means;
    const busiest = means.indexOf(Math.max(...means)), quietest = means.indexOf(Math.min(...means));
    charts.describe(canvas, `Per-thread summary of ${means.length} threads (16 electrodes each, bar height = rate, full ` +
      `scale ${max} Hz): busiest thread ${busiest} at ${means[busiest].toFixed(1)} Hz, quietest thread ${quietest} at ` +
      `${means[quietest].toFixed(1)} Hz; ${flagged.size} flagged channels. Click an electrode bar to inspect it.`);
  }

  function renderFlags(state) {
    const f = state.flags, rules = state.flag_rules;
    const list = (name) => (f[name].length ? `${f[name].length} (${f[name].slice(0, 12).join(", ")}${f[name].length > 12 ? ", …" : ""})` : "0");
    $("flag-summary").textContent = `Flagged channels: dead ${list("dead")}, noisy ${list("noisy")}, saturated ` +
      `${list("saturated")}; masked ${state.masked.length ? state.masked.join(", ") : "none"}. Rules: dead = ` +
      `${rules.dead}, noisy = ${rules.noisy}, saturated = ${rules.saturated}.` + (state.raw ? "" : ` (${state.raw_reason})`);
  }

  // the page's spoken summary of the live figures, every SUMMARY_MS (aria-live polite: read when idle)
  setInterval(() => {
    const header = app.stats.lastHeader;
    if (!header) return;
    const f = charts.flagState.flags;
    const series = header.series && header.series.length ? header.series[header.series.length - 1] : null;
    const latency = header.latency_ms && header.latency_ms.p50 !== null ? `${header.latency_ms.p50.toFixed(1)} ms` : "not measured yet";
    const mean = inspector.rates ? Array.from(inspector.rates).reduce((a, b) => a + b, 0) / inspector.rates.length / inspector.binS : 0;
    $("live-summary").textContent = `Session ${header.state}, decoder ${header.decoder || "none"}. ${header.n_channels} channels, ` +
      `mean rate ${mean.toFixed(1)} Hz; flagged ${f.dead.length} dead, ${f.noisy.length} noisy, ${f.saturated.length} ` +
      `saturated. Score ${header.score[0]} correct, ${header.score[1]} wrong` +
      (series ? `, ${series[2].toFixed(2)} bits per second` : "") + `. Loop latency ${latency} (median).`;
  }, SUMMARY_MS);

  window.neurolaceInspector = { open, close, state: inspector, drawThreadMap };
})();
