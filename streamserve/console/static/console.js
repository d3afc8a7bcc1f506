// streamserve console: renders the state the API streams (/v1/console/stream, server-sent
// events read with fetch so a bearer token can be sent), charts with uPlot, and calls the
// management routes for the actions. Data only ever reaches the page as text (textContent).

const TOKEN_KEY = "streamserve.console.token";
const RECONNECT_MS = 3000;
const TIMELINE_ITEMS = 60;
const METRICS = {
  binary: ["accuracy", "rolling_accuracy", "log_loss"],
  multiclass: ["accuracy", "rolling_accuracy"],
  regression: ["mae", "rmse", "rolling_mae"],
};
const COLOURS = ["#1f5fbf", "#1d6b36", "#8a4b00", "#6b2fa3"];

const $ = (sel, root = document) => root.querySelector(sel);
const models = new Map(); // name -> {root, chart, markers, versions}
let lastState = null;

// -- token ---------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// Not a form: a token must never be submitted (it would land in a URL).
function setupToken() {
  const input = $("#token");
  const shown = "••••••••";
  input.value = token() ? shown : "";
  const use = () => {
    const value = input.value.trim();
    if (value && value !== shown) {
      sessionStorage.setItem(TOKEN_KEY, value);
      input.value = shown;
      announce("Token kept for this tab.");
      reconnect();
    }
  };
  $("#token-use").addEventListener("click", use);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") use(); });
  $("#token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    announce("Token forgotten.");
    reconnect();
  });
}

function announce(text) {
  $("#announce").textContent = text;
}

// -- formatting ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function num(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString();
  return Number(v).toPrecision(digits).replace(/\.?0+$/, "");
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "—" : `${num(seconds * 1000, 3)} ms`;
}

function clock(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleTimeString([], { hour12: false });
}

function stamp(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  return el("time", { datetime: d.toISOString() }, clock(epochSeconds));
}

// -- live stream ---------------------------------------------------------------------------

let controller = null;

function setConnection(text, live) {
  const node = $("#connection");
  node.textContent = text;
  node.className = `connection ${live ? "live" : "down"}`;
}

function reconnect() {
  if (controller) controller.abort();
  connect();
}

async function connect() {
  controller = new AbortController();
  const mine = controller;
  try {
    const res = await fetch("/v1/console/stream", {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal: mine.signal,
      cache: "no-store",
    });
    if (!res.ok) {
      let message = `${res.status}`;
      try { message = (await res.json()).error || message; } catch { /* not JSON */ }
      setConnection(`not connected: ${message}`, false);
      retry(mine);
      return;
    }
    setConnection("live", true);
    await readEvents(res.body, (event, data) => {
      if (event === "state") render(JSON.parse(data));
    });
    setConnection("reconnecting…", false);
  } catch (err) {
    if (mine.signal.aborted) return;
    setConnection(`reconnecting… (${err.message})`, false);
  }
  retry(mine);
}

function retry(mine) {
  if (!mine.signal.aborted) setTimeout(() => { if (controller === mine) connect(); }, RECONNECT_MS);
}

// The text/event-stream format: events separated by a blank line, "event:" and "data:" fields.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(event, data.join("\n"));
    }
  }
}

// -- rendering -----------------------------------------------------------------------------

function render(state) {
  lastState = state;
  renderDeployment(state);
  renderCompare(state);
  for (const m of state.models) renderModel(m, state);
  renderAudit(state.audit || []);
}

function renderDeployment(state) {
  const live = state.live || {};
  const dl = $("#deployment");
  dl.replaceChildren();
  const add = (label, value) => dl.append(el("div", {}, el("dt", {}, label), el("dd", {}, value)));
  add("Updated", clock(state.at));
  add("Processes publishing", String((live.processes || []).length));
  const lag = live.lag || {};
  const lagKeys = Object.keys(lag);
  if (!lagKeys.length) add("Consumer lag", "—");
  for (const k of lagKeys) add(`Consumer lag ${k}`, num(lag[k]));
  const dead = live.dead_letters || {};
  add("Dead letters", `${num(dead.total || 0)} (${num(dead.per_s || 0)}/s)`);
  if (state.experiment && state.experiment.champion) add("Champion", state.experiment.champion);
  const ul = $("#sources");
  ul.replaceChildren();
  for (const [k, v] of Object.entries(state.sources || {})) ul.append(el("li", {}, `${k}: ${v}`));
  for (const p of live.processes || []) {
    ul.append(el("li", {}, `process ${p.id}: ${p.roles.join(", ")} (status ${num(p.age_s, 2)} s old)`));
  }
  if (state.error) ul.append(el("li", { class: "paused" }, state.error));
}

function learningText(m) {
  const paused = m.learning ? m.learning.paused : m.live && m.live.learning_paused;
  if (paused === true) return "paused";
  if (paused === false) return "active";
  return "—";
}

function metricNames(m) {
  return METRICS[m.task] || [];
}

function renderCompare(state) {
  const body = $("#compare tbody");
  body.replaceChildren();
  const ordered = [...state.models].sort((a, b) => rank(a) - rank(b));
  for (const m of ordered) {
    const live = m.live || {};
    const pq = live.prequential || latestMetrics(m) || {};
    const [main, rolling] = m.task === "regression" ? ["mae", "rolling_mae"] : ["accuracy", "rolling_accuracy"];
    const lat = live.latency || {};
    const alerts = (m.alerts || []).filter((a) => !a.error && !isLearning(a)).length;
    body.append(el("tr", { "data-model": m.model },
      el("th", { scope: "row" }, m.model),
      el("td", {}, m.role || "—"),
      el("td", {}, m.serving ?? "—"),
      el("td", {}, m.latest ?? "—"),
      el("td", {}, m.pinned ? "yes" : "no"),
      el("td", {}, learningText(m)),
      el("td", {}, num(pq[main])),
      el("td", {}, num(pq[rolling])),
      el("td", {}, num(live.scored_per_s)),
      el("td", {}, `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.p99)}`),
      el("td", {}, String(alerts)),
    ));
  }
}

function rank(m) {
  return { champion: 0, arm: 1, shadow: 2 }[m.role] ?? 3;
}

function latestMetrics(m) {
  const s = m.series || [];
  return s.length ? s[s.length - 1][1] : null;
}

function modelView(name) {
  let view = models.get(name);
  if (view) return view;
  const root = $("#model-template").content.firstElementChild.cloneNode(true);
  root.dataset.model = name;
  root.id = `model-${name}`;
  $(".model-name", root).textContent = name;
  $(".actions", root).setAttribute("aria-label", `Actions on ${name}`);
  $(".timeline", root).setAttribute("aria-label", `History of ${name}`);
  $(".chart", root).setAttribute("aria-label", `Prequential metrics of ${name} over time`);
  for (const button of root.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(name, button.dataset.action, root));
  }
  $("#models").append(root);
  view = { root, chart: null, markers: [], chartKey: "" };
  models.set(name, view);
  return view;
}

function renderModel(m, state) {
  const view = modelView(m.model);
  const root = view.root;
  const live = m.live || {};
  const role = $(".role", root);
  role.textContent = m.role || "no experiment";
  role.className = `badge role ${m.role || ""}`;
  $(".learner", root).textContent = `${m.task} · ${m.learner}` +
    (m.decision ? ` · decision v${m.decision_version}` : "");
  $(".serving", root).textContent = m.serving ?? "none yet";
  $(".latest", root).textContent = m.latest ?? "—";
  $(".pinned", root).textContent = m.pinned ? "yes" : "no";
  const learning = $(".learning", root);
  learning.textContent = learningText(m);
  learning.className = `learning ${learningText(m)}`;
  if (m.learning && m.learning.paused && m.learning.reason) {
    learning.textContent = `paused: ${m.learning.reason}`;
  }
  $("button[data-action=resume]", root).hidden = !(m.learning && m.learning.paused);
  $(".scored", root).textContent = num(live.scored_per_s);
  const lat = live.latency || {};
  $(".latency", root).textContent = `p50 ${ms(lat.p50)} · p95 ${ms(lat.p95)} · p99 ${ms(lat.p99)}`;
  $(".learned", root).textContent = num(live.learned_per_s);
  renderVersions(root, m);
  const events = history(m, state.audit || []);
  renderTimeline(root, events);
  renderChart(view, m, events, state);
}

function renderVersions(root, m) {
  const select = $(".version-select", root);
  const chosen = select.value;
  select.replaceChildren();
  for (const v of m.versions || []) {
    const notes = [v.serving ? "serving" : "", ...(v.aliases || [])].filter(Boolean);
    select.append(el("option", { value: String(v.version) },
      `v${v.version}${notes.length ? ` (${notes.join(", ")})` : ""}`));
  }
  if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

// Learning paused or resumed: written on drift-alerts too, but an operator's doing.
function isLearning(alert) {
  return alert.signal === "learning";
}

// Versions, drift alerts and operator actions on one model, newest first.
function history(m, audit) {
  const out = [];
  for (const v of m.versions || []) {
    if (v.created_at === null || v.created_at === undefined) continue;
    const parent = v.parent ? ` from v${v.parent}` : "";
    out.push({ t: v.created_at, kind: "version", label: `v${v.version}`,
      text: `written${parent}, ${num(v.examples_seen)} examples seen` });
  }
  for (const a of m.alerts || []) {
    if (a.error) continue;
    if (isLearning(a)) {
      const d = a.details || {};
      out.push({ t: a.ts / 1000, kind: "action", label: a.action.replace("_", " "),
        text: `at v${a.model_version}${d.by ? ` by ${d.by}` : ""}${d.reason ? `: ${d.reason}` : ""}` });
      continue;
    }
    const then = a.action_version ? ` → v${a.action_version}` : "";
    out.push({ t: a.ts / 1000, kind: "alert", label: a.severity === "drift" ? "drift" : `drift ${a.severity}`,
      text: `${a.detector} on ${a.signal} at v${a.model_version}: ${a.action}${then}` });
  }
  for (const a of audit) {
    if (a.error && !a.action) continue;
    if (a.model !== m.model) continue;
    const args = Object.entries(a.args || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    out.push({ t: a.ts / 1000, kind: "action", label: a.action,
      text: `${args ? args + " " : ""}by ${a.who} via ${a.via}: ${a.outcome}${a.error ? ` (${a.error})` : ""}` });
  }
  return out.sort((a, b) => b.t - a.t);
}

function renderTimeline(root, events) {
  const ol = $(".timeline", root);
  ol.replaceChildren();
  for (const e of events.slice(0, TIMELINE_ITEMS)) {
    ol.append(el("li", { class: e.kind }, stamp(e.t), el("span", { class: "kind" }, e.label), e.text));
  }
  if (!events.length) ol.append(el("li", {}, "nothing yet"));
}

function renderChart(view, m, events, state) {
  const names = metricNames(m).filter((k) => (m.series || []).some((p) => p[1][k] !== undefined));
  const series = m.series || [];
  const xs = series.map((p) => p[0]);
  const data = [xs, ...names.map((k) => series.map((p) => p[1][k] ?? null))];
  view.markers = events.map((e) => [e.t, e.kind]);
  view.until = Math.max(state.at, ...view.markers.map((m) => m[0]));
  const box = $(".chart", view.root);
  const text = $(".chart-text", view.root);
  const last = series.length ? series[series.length - 1][1] : {};
  text.textContent = names.length
    ? `Latest: ${names.map((k) => `${k} ${num(last[k])}`).join(", ")} (${series.length} points).`
    : "No metrics yet: they appear once the learner has learned from labels.";
  if (typeof uPlot === "undefined" || !names.length) return;
  const key = names.join(",");
  if (!view.chart || view.chartKey !== key) {
    if (view.chart) view.chart.destroy();
    view.chartKey = key;
    view.chart = new uPlot({
      width: Math.max(300, box.clientWidth),
      height: 240,
      // up to now (and the newest marker), not only to the newest point
      scales: { x: { time: true, range: (u, min, max) => [min, Math.max(max, view.until || max)] } },
      axes: [{ stroke: "#4a5260" }, { stroke: "#4a5260" }],
      series: [{}, ...names.map((k, i) => ({ label: k, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true }))],
      plugins: [markerPlugin(view)],
    }, data, box);
    new ResizeObserver(() => view.chart.setSize({ width: Math.max(300, box.clientWidth), height: 240 })).observe(box);
  } else {
    view.chart.setData(data);
  }
}

// Vertical lines for versions (grey), drift alerts (red) and operator actions (blue).
function markerPlugin(view) {
  const colour = { version: "#7c8594", alert: "#b42318", action: "#1f5fbf" };
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const [t, kind] of view.markers) {
          const x = Math.round(u.valToPos(t, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = colour[kind];
          ctx.setLineDash(kind === "version" ? [4, 4] : []);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

function renderAudit(entries) {
  const body = $("#audit tbody");
  body.replaceChildren();
  for (const a of entries) {
    if (a.error && !a.action) {
      body.append(el("tr", {}, el("td", { colspan: "7" }, a.error)));
      continue;
    }
    const args = Object.entries(a.args || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    body.append(el("tr", {},
      el("td", {}, stamp(a.ts / 1000)),
      el("td", {}, a.who),
      el("td", {}, a.via),
      el("td", {}, a.action),
      el("td", {}, a.model ?? "—"),
      el("td", {}, args),
      el("td", { class: `outcome-${a.outcome}` }, a.outcome + (a.error ? `: ${a.error}` : "")),
    ));
  }
  if (!entries.length) body.append(el("tr", {}, el("td", { colspan: "7" }, "no changes recorded yet")));
}

// -- actions -------------------------------------------------------------------------------

const ACTIONS = {
  pin: (v) => ({ verb: "pin", body: { version: v }, says: `pinned to v${v}` }),
  rollback: (v) => ({ verb: "rollback", body: { to: v }, says: `rolled back to v${v}` }),
  unpin: () => ({ verb: "unpin", body: null, says: "unpinned" }),
  promote: () => ({ verb: "promote", body: null, says: "promoted to champion" }),
  resume: () => ({ verb: "resume", body: null, says: "learning resumed" }),
};

async function act(model, action, root) {
  const result = $(".action-result", root);
  const show = (text, ok) => {
    result.textContent = text;
    result.className = `action-result ${ok ? "ok" : "bad"}`;
    announce(`${model}: ${text}`);
  };
  if (!token()) {
    show("Enter an admin token above first.", false);
    $("#token").focus();
    return;
  }
  const version = Number($(".version-select", root).value);
  const spec = ACTIONS[action](version);
  const res = await fetch(`/v1/registry/models/${encodeURIComponent(model)}:${spec.verb}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: spec.body ? JSON.stringify(spec.body) : undefined,
  }).catch((err) => ({ ok: false, status: 0, json: async () => ({ error: err.message }) }));
  let answer = {};
  try { answer = await res.json(); } catch { /* no body */ }
  if (res.ok && action === "promote" && answer.changed === false) show("already the champion.", true);
  else if (res.ok) show(`${spec.says}.`, true);
  else show(`refused (${res.status}): ${answer.error || "no reason given"}`, false);
}

// -- start ---------------------------------------------------------------------------------

setupToken();
connect();
window.streamserveConsole = { state: () => lastState };
