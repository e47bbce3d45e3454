// neurolace surgical plan page: GET /api/plan and /api/plan/overlay with the dashboard's token.
// Plain JS, no build step. window.neurolacePlan exposes what was loaded, for tests.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { plan: null, overlay: false, error: null };
  window.neurolacePlan = state;

  function token() {
    const match = location.hash.match(/token=([^&]+)/);
    if (match) {
      const value = decodeURIComponent(match[1]);
      sessionStorage.setItem("neurolace.token", value);
      history.replaceState(null, "", location.pathname);
      return value;
    }
    return sessionStorage.getItem("neurolace.token");
  }

  function fail(message) {
    state.error = message;
    $("plan-error").textContent = message;
  }

  const number = (value, digits) => (value === null || value === undefined ? "-" : Number(value).toFixed(digits));

  function show(answer) {
    const plan = answer.plan;
    state.plan = plan;
    $("plan-file").textContent = answer.source;
    $("plan-sites").textContent = `${plan.sites.length}` + (plan.requested_sites ? ` of ${plan.requested_sites}` : "");
    $("plan-clearance").textContent = `${number(plan.clearance_um, 1)} µm`;
    $("plan-margin").textContent = plan.min_margin_um === null ? "-" : `${number(plan.min_margin_um, 1)} µm`;
    $("plan-duration").textContent = `${number(plan.estimated_duration_s / 60, 1)} min`;
    const reasons = $("plan-reasons");
    reasons.replaceChildren(...(plan.reasons || []).map((reason) => {
      const item = document.createElement("li");
      item.textContent = reason;
      return item;
    }));
    const body = $("plan-table").querySelector("tbody");
    const sites = [...plan.sites].sort((a, b) => a.order - b.order);
    body.replaceChildren(...sites.map((site) => {
      const row = document.createElement("tr");
      for (const [value, digits] of [[site.order, 0], [site.x_um, 1], [site.y_um, 1], [site.depth_um, 0],
                                     [site.margin_um, 1], [site.hit_probability, 4]]) {
        const cell = document.createElement("td");
        cell.textContent = number(value, digits);
        row.appendChild(cell);
      }
      return row;
    }));
    $("plan-summary").hidden = false;
    $("plan-table").hidden = false;
  }

  async function showOverlay(bearer) {
    const response = await fetch("/api/plan/overlay", { headers: { Authorization: "Bearer " + bearer } });
    if (!response.ok) return;
    const blob = await response.blob();
    // the page's policy allows images from the server or data: URLs (no blob:)
    const url = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    const image = $("plan-overlay");
    image.onload = () => { state.overlay = true; };
    image.src = url;
    $("plan-overlay-file").textContent = state.plan && state.plan.image && state.plan.image.path
      ? state.plan.image.path : "the plan's image";
    $("plan-figure").hidden = false;
  }

  async function load() {
    const bearer = token();
    if (!bearer) {
      fail("sign in on the dashboard first (or open /plan#token=...)");
      return;
    }
    let response;
    try {
      response = await fetch("/api/plan", { headers: { Authorization: "Bearer " + bearer } });
    } catch (error) {
      fail(`cannot reach the server: ${error}`);
      return;
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (error) { /* not JSON */ }
      fail(response.status === 404 ? "this server was started without a plan (neurolace serve --plan plan.json)"
                                   : `plan: ${detail}`);
      return;
    }
    const answer = await response.json();
    show(answer);
    if (answer.has_overlay) await showOverlay(bearer);
  }

  load();
})();
