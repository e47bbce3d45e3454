// neurolace typing view: during a typing block (frame header task == "typing") the dashboard's task canvas
// shows the on-screen keyboard, the key aimed at and the cursor instead of the Webgrid, and an aria-live
// region the typed text, the phrase to copy, the suggestions and the running ccpm. Keys arrive once (in the
// first frame after they change, header.typing.keys, and in every session snapshot, typing_keys).
// Uses app.js's hooks only; window.neurolaceTyping exposes counters for tests.
"use strict";

(function () {
  const typing = { keys: null, drawn: 0, lastState: null, text: "" };
  window.neurolaceTyping = typing;
  const hooks = window.neurolace && window.neurolace.hooks;
  if (!hooks) return;

  function region() {
    let element = document.getElementById("typing-status");
    if (!element) {
      const canvas = document.getElementById("webgrid");
      if (!canvas) return null;
      element = document.createElement("p");
      element.id = "typing-status";
      element.className = "note";
      element.setAttribute("aria-live", "polite");
      canvas.insertAdjacentElement("afterend", element);
    }
    return element;
  }

  // workspace units (0-1, y up) to canvas pixels
  function drawKeyboard(canvas, keys, state) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#111"; ctx.fillRect(0, 0, w, h);
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const key of keys) {
      const size = key.width * w * 0.92, x = key.x * w - size / 2, y = (1 - key.y) * h - size / 2;
      const aimed = key.index === state.target_key;
      ctx.fillStyle = aimed ? "#2e7d32" : key.kind === "suggestion" ? "#283593" : "#333";
      ctx.fillRect(x, y, size, size);
      ctx.fillStyle = "#eee";
      let label = key.kind === "suggestion" ? (state.suggestions[suggestionSlot(keys, key)] || "")
        : key.kind === "space" ? "␣" : key.kind === "backspace" ? "⌫" : key.label;
      ctx.font = `${Math.max(9, Math.min(18, size / Math.max(label.length, 1.5)))}px sans-serif`;
      ctx.fillText(label, x + size / 2, y + size / 2);
    }
    const [cx, cy] = state.cursor;
    ctx.strokeStyle = "#ffeb3b"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(cx * w, (1 - cy) * h, 6, 0, 2 * Math.PI); ctx.stroke();
  }

  function suggestionSlot(keys, key) {
    let slot = 0;
    for (const other of keys) {
      if (other === key) return slot;
      if (other.kind === "suggestion") slot++;
    }
    return slot;
  }

  hooks.session.push((snapshot) => {
    if (snapshot && snapshot.typing_keys) typing.keys = snapshot.typing_keys;
  });

  hooks.draw.push((header) => {
    const canvas = document.getElementById("webgrid");
    const status = region();
    if (header.task !== "typing" || !header.typing) {
      if (status && typing.lastState) { status.textContent = ""; typing.lastState = null; }
      return;
    }
    const state = header.typing;
    if (state.keys) typing.keys = state.keys;
    typing.lastState = state;
    if (!typing.keys || !canvas) return;
    drawKeyboard(canvas, typing.keys, state);
    typing.drawn++;
    const phrase = state.target_phrase === null ? "" : `copy "${state.target_phrase}", `;
    const text = `${phrase}typed "${state.typed_text}", suggestions ${state.suggestions.join(", ") || "none"}, `
      + `${state.ccpm.toFixed(1)} ccpm`;
    if (status && text !== typing.text) { status.textContent = text; typing.text = text; }
  });
})();
