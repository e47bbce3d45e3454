// neurolace dashboard charts: one axis/scale helper every canvas chart uses (window.neurolaceCharts).
// Axes with units on every chart, a colour bar with its scale on the channel maps, thread and electrode
// labels, flagged and masked channels marked, and a text alternative (aria-label) kept current on each canvas.
// app.js draws its charts through lines() and channelMap() when this file is loaded; the raster and the
// blocks chart are framed here after app.js drew them (neurolace.hooks). Colours meet WCAG AA (4.5:1 for
// text, 3:1 for lines against the chart background #0b1016).
"use strict";

(function () {
  const BG = "#0b1016", AXIS = "#9aa8b8", TEXT = "#c9d3de", GRID = "#3d4b5c";  // 8.0:1, 11:1, 2.1:1 (grid)
  const FONT = "11px system-ui, sans-serif";
  const ELECTRODES = 16;
  const MARGIN = { left: 46, right: 12, top: 8, bottom: 26 };
  const FLAG_COLOURS = { dead: "#b0bec5", noisy: "#ffd54f", saturated: "#ff7043" };
  // what each chart shows, for axes and text alternatives (canvas id -> description)
  const CHARTS = {
    "bps-chart": { x: "time (s)", y: "bits per second (BPS)", y2: "net targets per minute (NTPM)",
                   name: "Webgrid bits per second over the trailing 30 s" },
    "latency-chart": { x: "time (s)", y: "loop latency (ms)", name: "decoding-loop latency" },
  };
  const flagState = { flags: { dead: [], noisy: [], saturated: [] }, masked: [], selected: null, rules: null };
  const summaries = {};

  function niceStep(span, count) {
    const raw = Math.max(span, 1e-12) / Math.max(count, 1);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 2.5 ? 2.5 : unit <= 5 ? 5 : 10) * power;
  }

  // ticks between min and max (inclusive of round values), about `count` of them
  function ticks(min, max, count) {
    if (!(max > min)) max = min + 1;
    const step = niceStep(max - min, count);
    const out = [];
    for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return { values: out, step };
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * power >= value) return m * power;
    return 10 * power;
  }

  function format(value, step) {
    const digits = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step) - 1e-9));
    return value.toFixed(digits);
  }

  function plotRect(canvas, margin) {
    const m = Object.assign({}, MARGIN, margin || {});
    return { x: m.left, y: m.top, w: canvas.width - m.left - m.right, h: canvas.height - m.top - m.bottom };
  }

  // axes around rect: x = {min, max, label}, y = {min, max, label}, optional y2 = {min, max, label} on the right
  function axes(ctx, rect, spec) {
    ctx.save();
    ctx.font = FONT;
    ctx.lineWidth = 1;
    const drawn = {};
    if (spec.x) {
      const t = ticks(spec.x.min, spec.x.max, Math.max(2, Math.floor(rect.w / 70)));
      ctx.fillStyle = TEXT; ctx.textAlign = "center"; ctx.textBaseline = "top";
      for (const v of t.values) {
        const px = Math.round(rect.x + (v - spec.x.min) / (spec.x.max - spec.x.min) * rect.w) + 0.5;
        if (spec.grid !== false) { ctx.strokeStyle = GRID; ctx.beginPath(); ctx.moveTo(px, rect.y); ctx.lineTo(px, rect.y + rect.h); ctx.stroke(); }
        ctx.strokeStyle = AXIS; ctx.beginPath(); ctx.moveTo(px, rect.y + rect.h); ctx.lineTo(px, rect.y + rect.h + 4); ctx.stroke();
        ctx.fillText(spec.x.format ? spec.x.format(v) : format(v, t.step), px, rect.y + rect.h + 5);
      }
      drawn.x = t.values;
      if (spec.x.label) { ctx.textAlign = "right"; ctx.textBaseline = "bottom"; ctx.fillText(spec.x.label, rect.x + rect.w, rect.y + rect.h + 26); }
    }
    const vertical = (axis, side) => {
      const t = ticks(axis.min, axis.max, Math.max(2, Math.floor(rect.h / 28)));
      ctx.fillStyle = TEXT; ctx.textBaseline = "middle"; ctx.textAlign = side === "left" ? "right" : "left";
      const x0 = side === "left" ? rect.x : rect.x + rect.w;
      for (const v of t.values) {
        const py = Math.round(rect.y + rect.h - (v - axis.min) / (axis.max - axis.min) * rect.h) + 0.5;
        if (side === "left" && spec.grid !== false) { ctx.strokeStyle = GRID; ctx.beginPath(); ctx.moveTo(rect.x, py); ctx.lineTo(rect.x + rect.w, py); ctx.stroke(); }
        ctx.strokeStyle = AXIS; ctx.beginPath(); ctx.moveTo(x0, py); ctx.lineTo(x0 + (side === "left" ? -4 : 4), py); ctx.stroke();
        ctx.fillText(axis.format ? axis.format(v) : format(v, t.step), x0 + (side === "left" ? -6 : 6), py);
      }
      if (axis.label) {
        ctx.save();
        ctx.translate(side === "left" ? 10 : ctx.canvas.width - 4, rect.y + rect.h / 2);
        ctx.rotate(side === "left" ? -Math.PI / 2 : Math.PI / 2);
        ctx.textAlign = "center"; ctx.textBaseline = "middle";
        ctx.fillText(axis.label, 0, 0);
        ctx.restore();
      }
      return t.values;
    };
    if (spec.y) drawn.y = vertical(spec.y, "left");
    if (spec.y2) drawn.y2 = vertical(spec.y2, "right");
    ctx.strokeStyle = AXIS;
    ctx.strokeRect(rect.x + 0.5, rect.y + 0.5, rect.w - 1, rect.h - 1);
    ctx.restore();
    return drawn;
  }

  function clear(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    return ctx;
  }

  // a text alternative for a canvas, kept current: role=img and aria-label
  function describe(canvas, text) {
    if (!canvas) return;
    if (canvas.getAttribute("role") !== "img") canvas.setAttribute("role", "img");
    if (canvas.getAttribute("aria-label") !== text) canvas.setAttribute("aria-label", text);
    summaries[canvas.id] = text;
  }

  // line chart over points [[t, a, b, ...]]: series [{index, color, label, digits}]; a second series that is a
  // fixed multiple of the first (NTPM and BPS) is shown as a right-hand axis, not as a second, identical curve
  function lines(canvas, points, series) {
    const ctx = clear(canvas);
    const info = CHARTS[canvas.id] || { x: "time (s)", y: series.map((s) => s.label).join(", "), name: canvas.id };
    const twoAxes = series.length === 2 && info.y2;
    const rect = plotRect(canvas, twoAxes ? { right: 46 } : {});
    const first = series[0];
    const t0 = points.length ? points[0][0] : 0;
    const t1 = points.length > 1 ? points[points.length - 1][0] : t0 + 1;
    const peak = Math.max(0, ...points.map((p) => p[first.index] || 0));
    const yMax = niceMax(peak * 1.1 || (first.label === "ms" ? 1 : 0.1));
    let y2 = null;
    if (twoAxes) {
      const ratio = points.map((p) => (p[first.index] > 0 ? p[series[1].index] / p[first.index] : null)).filter((r) => r);
      const factor = ratio.length ? ratio[ratio.length - 1] : 60 / Math.log2(30 * 30 - 1);
      y2 = { min: 0, max: yMax * factor, label: info.y2 };
    }
    axes(ctx, rect, { x: { min: t0, max: t1 > t0 ? t1 : t0 + 1, label: info.x }, y: { min: 0, max: yMax, label: info.y }, y2 });
    if (points.length >= 2) {
      ctx.save();
      ctx.beginPath(); ctx.rect(rect.x, rect.y, rect.w, rect.h); ctx.clip();
      ctx.strokeStyle = first.color; ctx.lineWidth = 1.75; ctx.beginPath();
      points.forEach((p, i) => {
        const x = rect.x + (p[0] - t0) / Math.max(1e-9, t1 - t0) * rect.w;
        const y = rect.y + rect.h - (p[first.index] || 0) / yMax * rect.h;
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
      ctx.restore();
    }
    const last = points.length ? points[points.length - 1] : null;
    const values = series.map((s) => `${s.label} ${last ? (last[s.index] || 0).toFixed(s.digits) : "-"}`).join(", ");
    ctx.font = FONT; ctx.fillStyle = TEXT; ctx.textAlign = "right"; ctx.textBaseline = "top";
    ctx.fillText(values, rect.x + rect.w - 4, rect.y + 3);
    describe(canvas, `${info.name}: ${points.length} points over ${(t1 - t0).toFixed(0)} s; latest ${values}` +
             ` (axes: ${info.x}; ${info.y}${twoAxes ? "; right: " + info.y2 : ""})`);
  }

  // colour bar: lut (Uint8ClampedArray 256 x RGBA), from 0 to max, with ticks and unit
  function colourBar(ctx, rect, lut, max, unit) {
    const image = ctx.createImageData(1, 256);
    for (let i = 0; i < 256; i++) {
      const k = (255 - i) * 4;
      image.data.set(lut.subarray ? lut.subarray(k, k + 4) : lut.slice(k, k + 4), i * 4);
    }
    const strip = document.createElement("canvas");
    strip.width = 1; strip.height = 256;
    strip.getContext("2d").putImageData(image, 0, 0);
    ctx.save();
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(strip, rect.x, rect.y, rect.w, rect.h);
    ctx.strokeStyle = AXIS; ctx.strokeRect(rect.x + 0.5, rect.y + 0.5, rect.w - 1, rect.h - 1);
    ctx.restore();
    axes(ctx, { x: rect.x, y: rect.y, w: rect.w, h: rect.h }, { y2: { min: 0, max, label: unit }, grid: false });
  }

  const channelImages = {};

  // a channel map (64 threads x 16 electrodes): values per channel; canvas "heatmap" holds counts per bin
  // (shown in Hz, full scale a round number above the 99th percentile), "sbp" spike-band power scaled to 0-255
  function channelMap(canvas, image, values, scale) {
    const n = values.length;
    const rows = Math.min(ELECTRODES, n), columns = Math.ceil(n / rows);
    const heat = canvas.id === "heatmap";
    const binS = ((window.neurolace && neurolace.stats.lastHeader && neurolace.stats.lastHeader.bin_ms) || 20) / 1000;
    let fullScale, toLevel, unit;
    if (heat) {
      const sorted = Float32Array.from(values).sort();
      const p99 = sorted[Math.floor(0.99 * (n - 1))] / binS;
      const state = channelImages[canvas.id] || (channelImages[canvas.id] = { fullScale: 0 });
      const target = niceMax(Math.max(p99, 5));
      // the scale follows the data but does not flicker: it moves when the data leave 60-100 % of it
      if (!state.fullScale || target > state.fullScale || target < 0.6 * state.fullScale) state.fullScale = target;
      fullScale = state.fullScale;
      toLevel = (v) => Math.min(255, Math.round(v / binS / fullScale * 255));
      unit = "rate (Hz)";
    } else {
      const header = window.neurolace && neurolace.stats.lastHeader;
      fullScale = header && header.sbp_scale ? header.sbp_scale : 255;
      toLevel = (v) => Math.min(255, Math.round(v * scale));
      unit = "SBP (µV)";
    }
    if (image.n !== n) { image.canvas.width = columns; image.canvas.height = rows; image.n = n; }
    const ictx = image.canvas.getContext("2d");
    const data = ictx.createImageData(columns, rows);
    const lut = window.neurolaceCharts.lut;
    for (let c = 0; c < n; c++) {
      const level = toLevel(values[c]) * 4;
      const offset = ((c % rows) * columns + Math.floor(c / rows)) * 4;
      data.data[offset] = lut[level]; data.data[offset + 1] = lut[level + 1];
      data.data[offset + 2] = lut[level + 2]; data.data[offset + 3] = 255;
    }
    ictx.putImageData(data, 0, 0);
    const ctx = clear(canvas);
    const rect = plotRect(canvas, { right: 74, bottom: 24, left: 40 });
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image.canvas, rect.x, rect.y, rect.w, rect.h);
    const cellW = rect.w / columns, cellH = rect.h / rows;
    axes(ctx, rect, {
      x: { min: -0.5, max: columns - 0.5, label: "thread", format: (v) => String(v) },
      // electrode 0 at the top, as the image is drawn (row = electrode)
      y: { min: -0.5, max: rows - 0.5, label: "electrode", format: (v) => String(rows - 1 - v) },
      grid: false,
    });
    const bar = { x: canvas.width - 58, y: rect.y, w: 12, h: rect.h };
    ctx.fillStyle = BG; ctx.fillRect(rect.x + rect.w + 1, 0, canvas.width - rect.x - rect.w, canvas.height);
    colourBar(ctx, bar, lut, heat ? fullScale : Number(fullScale.toPrecision(3)), unit);
    if (heat) markChannels(ctx, rect, cellW, cellH, rows);
    const flagged = flagState.flags;
    const mean = values.reduce((a, b) => a + b, 0) / Math.max(n, 1) / (heat ? binS : 1);
    describe(canvas, heat
      ? `Channel map, ${columns} threads by ${rows} electrodes: mean rate ${mean.toFixed(1)} Hz, colour scale 0 to ` +
        `${fullScale} Hz; flagged: ${flagged.dead.length} dead, ${flagged.noisy.length} noisy, ` +
        `${flagged.saturated.length} saturated; ${flagState.masked.length} masked. Click a channel to inspect it.`
      : `Spike-band power per channel, ${columns} threads by ${rows} electrodes, full scale ${fullScale.toFixed(1)} µV`);
  }

  function markChannels(ctx, rect, cellW, cellH, rows) {
    ctx.save();
    ctx.lineWidth = 1.5;
    const cell = (c) => [rect.x + Math.floor(c / rows) * cellW, rect.y + (c % rows) * cellH];
    for (const [kind, colour] of Object.entries(FLAG_COLOURS)) {
      ctx.strokeStyle = colour;
      for (const c of flagState.flags[kind] || []) {
        const [x, y] = cell(c);
        if (kind === "dead") {
          ctx.beginPath(); ctx.moveTo(x + 1, y + 1); ctx.lineTo(x + cellW - 1, y + cellH - 1);
          ctx.moveTo(x + cellW - 1, y + 1); ctx.lineTo(x + 1, y + cellH - 1); ctx.stroke();
        } else ctx.strokeRect(x + 1, y + 1, cellW - 2, cellH - 2);
      }
    }
    ctx.fillStyle = "rgba(11,16,22,0.75)";
    for (const c of flagState.masked) { const [x, y] = cell(c); ctx.fillRect(x, y, cellW, cellH); }
    if (flagState.selected !== null) {
      const [x, y] = cell(flagState.selected);
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.strokeRect(x - 1, y - 1, cellW + 2, cellH + 2);
    }
    ctx.restore();
  }

  // which channel a click at (clientX, clientY) on the heat map falls on, or null
  function channelAt(canvas, clientX, clientY, n) {
    const box = canvas.getBoundingClientRect();
    const x = (clientX - box.left) * canvas.width / box.width, y = (clientY - box.top) * canvas.height / box.height;
    const rows = Math.min(ELECTRODES, n), columns = Math.ceil(n / rows);
    const rect = plotRect(canvas, { right: 74, bottom: 24, left: 40 });
    const column = Math.floor((x - rect.x) / rect.w * columns), row = Math.floor((y - rect.y) / rect.h * rows);
    if (column < 0 || column >= columns || row < 0 || row >= rows) return null;
    const channel = column * rows + row;
    return channel < n ? channel : null;
  }

  // the raster as app.js drew it (full canvas), redrawn inside axes: time (s) and channel
  const rasterCopy = document.createElement("canvas");
  let rasterColumnsFramed = -1;
  function frameRaster(canvas, n, binMs, width) {
    if (!canvas || !n) return;
    // only a raster app.js has just redrawn (a frame without bins leaves the framed one as it was)
    const drawnColumns = window.neurolace ? neurolace.stats.rasterColumns : 0;
    if (drawnColumns === rasterColumnsFramed) return;
    rasterColumnsFramed = drawnColumns;
    if (rasterCopy.width !== canvas.width || rasterCopy.height !== canvas.height) {
      rasterCopy.width = canvas.width; rasterCopy.height = canvas.height;
    }
    const copy = rasterCopy.getContext("2d");
    copy.clearRect(0, 0, canvas.width, canvas.height);
    copy.drawImage(canvas, 0, 0);
    const ctx = clear(canvas);
    const rect = plotRect(canvas);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(rasterCopy, rect.x, rect.y, rect.w, rect.h);
    const spanS = width * binMs / 1000;
    axes(ctx, rect, { x: { min: -spanS, max: 0, label: "time (s, 0 = now)" },
                      // channel 0 at the top, as app.js draws the rows
                      y: { min: -n, max: 0, label: "channel", format: (v) => String(Math.round(-v)) }, grid: false });
    describe(canvas, `Raster of threshold crossings, the last ${spanS.toFixed(0)} s, one column per ${binMs} ms bin, ` +
             `4 channels per row, ${n} channels`);
  }

  // BPS per block as bars with a BPS axis
  function blocksChart(canvas, snapshot) {
    if (!canvas || !snapshot) return;
    const blocks = [];
    if (snapshot.summary && Array.isArray(snapshot.summary.blocks)) for (const b of snapshot.summary.blocks) blocks.push(b);
    for (const b of snapshot.blocks || []) blocks.push(b);
    const ctx = clear(canvas);
    const rect = plotRect(canvas);
    const max = niceMax(Math.max(0.1, ...blocks.map((b) => b.bps || 0)) * 1.1);
    axes(ctx, rect, { y: { min: 0, max, label: "BPS" }, grid: true });
    const width = rect.w / Math.max(blocks.length, 1);
    ctx.font = FONT; ctx.textAlign = "center"; ctx.textBaseline = "top";
    blocks.forEach((b, i) => {
      const height = (b.bps || 0) / max * rect.h;
      ctx.fillStyle = "#4fc3f7";
      ctx.fillRect(rect.x + i * width + 4, rect.y + rect.h - height, Math.max(2, width - 8), height);
      ctx.fillStyle = TEXT;
      ctx.fillText(String(b.name || i + 1).slice(0, 10), rect.x + (i + 0.5) * width, rect.y + rect.h + 5);
    });
    describe(canvas, blocks.length ? `BPS per block: ${blocks.map((b) => `${b.name} ${(b.bps || 0).toFixed(2)}`).join(", ")}`
                                   : "BPS per block: no block scored yet");
  }

  const lut = LUT;  // app.js's colour map (a global of the page's first script), so bar and map agree

  window.neurolaceCharts = { ticks, niceMax, plotRect, axes, clear, describe, lines, colourBar, channelMap, channelAt,
                             frameRaster, blocksChart, lut, flagState, summaries, FLAG_COLOURS, BG, TEXT };

  // frame the charts app.js draws itself, after each frame and each session snapshot
  if (window.neurolace && window.neurolace.hooks) {
    neurolace.hooks.draw.push((header) => {
      const [x, y, click] = header.cursor, target = header.target;
      describe(document.getElementById("webgrid"), `Webgrid ${header.grid_side} x ${header.grid_side}: cursor at ` +
        `x ${x.toFixed(2)}, y ${y.toFixed(2)}${click > 0.5 ? ", clicking" : ""}` +
        (target && target[2] > 0 ? `; lit cell at x ${target[0].toFixed(2)}, y ${target[1].toFixed(2)}` : "") +
        `; score ${header.score[0]} correct, ${header.score[1]} wrong`);
      frameRaster(document.getElementById("raster"), header.n_channels, header.bin_ms || 20,
                  (window.neurolace.rasterWidth) || 300);
    });
    neurolace.hooks.session.push((snapshot) => blocksChart(document.getElementById("blocks-chart"), snapshot));
  }
})();
