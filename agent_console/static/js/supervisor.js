// Supervisor monitor: wallboard, agent grid and call list kept from a snapshot plus deltas.
// Rows are created once and only their changed cells are rewritten; times in state tick
// locally, so a thousand agents cost no traffic per second.
import { Connection } from "./connection.js";
import { initSupervisorCrm } from "./crm.js";
import { $, clear, el, option, show } from "./dom.js";
import { duration, percent, since } from "./format.js";
import { apply, bindToggle, label, onLangChange, t } from "./i18n.js";
import { bindLogin } from "./login.js";
import { initOutbound } from "./outbound.js";
import { mountReports } from "./reports.js";
import { RecordingsPanel } from "./recordings.js";

const model = { user: null, queues: [], wallboard: new Map(), agents: new Map(), calls: new Map(), alerts: new Map() };
const rows = { wallboard: new Map(), agents: new Map(), calls: new Map() };

const conn = new Connection({
  storageKey: "cti.supervisor.session",
  onMessage: handle,
  onStatus: (status) => {
    const node = $("conn");
    node.dataset.status = status;
    node.textContent = t(`conn.${status}`);
  },
  onAuth: (msg) => {
    if (msg.user.role === "agent") {
      $("login-error").textContent = t("err.supervisor_only");
      conn.logout();
      return;
    }
    model.user = msg.user;
    model.queues = msg.config.queues;
    recordings.role = msg.user.role;
    recordings.refresh();
    $("who").textContent = msg.user.display_name;
    $("my-phone").value = localStorage.getItem("cti.sup.phone") || msg.user.extension || "";
    render();
  },
  onLoggedOut: () => {
    model.user = null;
    render();
  },
});

const recordings = new RecordingsPanel({
  conn, role: "supervisor", agents: () => [...model.agents.entries()].map(([id, row]) => [id, row.name || id]),
});
recordings.mount({ recordings: $("recordings-card"), voicemails: $("voicemail-card") });

function handle(msg) {
  if (!model.user) return; // an agent who opened this page: being logged out
  switch (msg.type) {
    case "snapshot":
      model.wallboard = new Map(Object.entries(msg.wallboard));
      model.agents = new Map(Object.entries(msg.agents));
      model.calls = new Map(Object.entries(msg.call_list));
      model.alerts = new Map(msg.alerts.map((a) => [alertKey(a), a]));
      for (const section of Object.values(rows)) {
        for (const row of section.values()) row.tr.remove();
        section.clear();
      }
      for (const key of model.wallboard.keys()) paintQueue(key);
      for (const key of model.agents.keys()) paintAgent(key);
      for (const key of model.calls.keys()) paintCall(key);
      paintAlerts();
      break;
    case "wallboard_delta":
      merge(model.wallboard, msg.queues, paintQueue);
      break;
    case "agent_grid_delta":
      merge(model.agents, msg.agents, paintAgent);
      break;
    case "call_list_delta":
      merge(model.calls, msg.calls, paintCall);
      break;
    case "alert": {
      const key = alertKey(msg.alert);
      if (msg.alert.level === "cleared") model.alerts.delete(key);
      else model.alerts.set(key, msg.alert);
      paintAlerts();
      break;
    }
    default:
      return;
  }
  counts();
}

function merge(map, changes, paint) {
  for (const [key, fields] of Object.entries(changes)) {
    if (fields === null) map.delete(key);
    else map.set(key, { ...(map.get(key) || {}), ...fields });
    paint(key);
  }
}

// ------------------------------------------------------------------ rows

function rowFor(section, key, tbody, build) {
  let row = rows[section].get(key);
  if (!row) {
    row = build();
    row.tr.dataset.key = key;
    rows[section].set(key, row);
    tbody.append(row.tr);
  }
  return row;
}

function drop(section, key) {
  const row = rows[section].get(key);
  if (row) {
    row.tr.remove();
    rows[section].delete(key);
  }
}

function cells(names) {
  const out = {};
  for (const name of names) out[name] = el("td", { class: `c-${name}` });
  return out;
}

function set(cell, text) {
  const value = String(text);
  if (cell.textContent !== value) cell.textContent = value;
}

function paintQueue(queue) {
  const data = model.wallboard.get(queue);
  if (!data) return drop("wallboard", queue);
  const row = rowFor("wallboard", queue, $("wallboard"), () => {
    const c = cells(["queue", "waiting", "longest", "sl", "abandon", "asa", "aht", "occupancy", "states"]);
    return { tr: el("tr", {}, Object.values(c)), c };
  });
  set(row.c.queue, label("queue", queue));
  set(row.c.waiting, data.waiting ?? 0);
  row.c.waiting.dataset.hot = String((data.waiting ?? 0) > 0);
  judged(row.c.sl, data, "service_level", percent(data.sl), targetPercent);
  judged(row.c.abandon, data, "abandon_rate", percent(data.abandon_rate), targetPercent);
  judged(row.c.asa, data, "asa", duration(data.asa_s), duration);
  set(row.c.aht, duration(data.aht_s));
  set(row.c.occupancy, percent(data.occupancy_pct));
  const states = Object.entries(data.agents_by_state || {}).filter(([, n]) => n > 0);
  clear(row.c.states).append(...states.map(([state, n]) =>
    el("span", { class: "badge state small", "data-state": state, text: `${label("state", state)} ${n}` })));
  tickQueue(queue, row);
}

function tickQueue(queue, row) {
  const data = model.wallboard.get(queue);
  if (!data) return;
  const text = data.oldest_since ? since(data.oldest_since) : data.longest_wait_s != null ? duration(data.longest_wait_s) : "–";
  judged(row.c.longest, data, "longest_wait", text, duration);
}

const targetPercent = (value) => `${Number(value)}%`;

// A figure beside its target ("72.0% / 80%"), its cell coloured by where it stands: the server judges
// (ok, warning, breach; none while too few calls count), by the same rules as its alerts.
function judged(cell, data, metric, text, formatTarget) {
  const target = (data.targets || {})[metric];
  set(cell, target === undefined || target === null ? text : `${text} / ${formatTarget(target)}`);
  const level = (data.levels || {})[metric];
  if (level) {
    if (cell.dataset.level !== level) cell.dataset.level = level;
    const title = t(`level.${level}`);
    if (cell.title !== title) cell.title = title;
  } else if (cell.dataset.level) {
    delete cell.dataset.level;
    cell.title = "";
  }
}

function actionButton(key, onclick, cls = "small") {
  return el("button", { type: "button", class: cls, "data-i18n": key, text: t(key), onclick });
}

function paintAgent(agentId) {
  const data = model.agents.get(agentId);
  if (!data) return drop("agents", agentId);
  const row = rowFor("agents", agentId, $("agent-grid"), () => {
    const c = cells(["agent", "state", "time", "ext", "queues", "calls", "aht", "occupancy", "actions"]);
    const spy = (mode) => () => supervise("spy", { agent_id: agentId, mode, ...phone() });
    c.actions.append(
      actionButton("sup.listen", spy("listen")), actionButton("sup.whisper", spy("whisper")),
      actionButton("sup.barge", spy("barge")),
      actionButton("sup.force_pause", () => supervise("force_pause", { agent_id: agentId, reason: "supervisor" })),
      actionButton("sup.force_logout", () => supervise("force_logout", { agent_id: agentId }), "small danger"));
    return { tr: el("tr", {}, Object.values(c)), c };
  });
  paintAgentName(row, agentId, data);
  row.c.state.dataset.state = data.state;
  set(row.c.state, label("state", data.state) + (data.reason ? ` · ${label("reason", data.reason)}` : ""));
  // A browser phone's registration beside the extension (a desk phone's state is the PBX's to show).
  // ... and why it is not registered, in words: the console's own report or the PBX's (pbx_unreachable ...).
  set(row.c.ext, (data.extension || "–") + (data.phone ? ` · ${t(`phone.state.${data.phone}`)}` : "")
    + (data.phone && data.phone_detail ? ` (${label("phone.why", data.phone_detail)})` : ""));
  row.c.ext.dataset.phone = data.phone || "";
  row.c.ext.dataset.phoneDetail = data.phone_detail || "";
  set(row.c.queues, (data.queues || []).map((q) => label("queue", q)).join(", ") || "–");
  set(row.c.calls, data.calls_today ?? 0);
  set(row.c.aht, duration(data.aht_s));
  set(row.c.occupancy, percent(data.occupancy_pct));
  set(row.c.time, since(data.since));
  // Only what makes sense in the agent's state: listening needs a call, a pause needs a logged-in agent
  // who is not paused already, a logout a logged-in agent; the mode you are in now is not offered again.
  const onCall = ["on_call", "on_hold"].includes(data.state);
  const loggedIn = data.state !== "logged_out";
  const mine = myMonitoring(data);
  for (const button of row.c.actions.querySelectorAll("button")) {
    const key = button.dataset.i18n;
    if (["sup.listen", "sup.whisper", "sup.barge"].includes(key)) {
      const active = Boolean(mine) && `sup.${mine.mode}` === key;
      button.disabled = !onCall || active;
      button.classList.toggle("active", active);
    }
    if (key === "sup.force_pause") button.disabled = !loggedIn || data.state === "paused" || Boolean(data.reason);
    if (key === "sup.force_logout") button.disabled = !loggedIn;
  }
  filterRow(row.tr, agentId, data);
  paintSpyBanner();
}

// Who monitors this agent (every supervisor sees it): a badge per supervisor beside the name.
function paintAgentName(row, agentId, data) {
  const watchers = Object.entries(data.monitored_by || {});
  const name = data.name ? `${data.name} (${agentId})` : agentId;
  const shown = `${name}|${watchers.map(([who, m]) => `${who}:${m.mode}`).join(",")}|${t("sup.monitoring")}`;
  if (row.c.agent.dataset.shown === shown) return;
  row.c.agent.dataset.shown = shown;
  clear(row.c.agent).append(name, ...watchers.map(([who, m]) => el("span", {
    class: "badge small monitored", "data-mode": m.mode,
    text: t("sup.monitored_by", { who, mode: label("mode", m.mode) }) })));
}

function myMonitoring(data) {
  return model.user && data && data.monitored_by ? data.monitored_by[model.user.username] : undefined;
}

// The banner of the call you are monitoring, with its stop button (one spy per supervisor).
function paintSpyBanner() {
  let found = null;
  for (const [agentId, data] of model.agents) {
    const mine = myMonitoring(data);
    if (mine) found = { agentId, data, mine };
  }
  show($("spy-banner"), Boolean(found));
  if (!found) return;
  const { agentId, data, mine } = found;
  set($("spy-agent"), data.name ? `${data.name} (${agentId})` : agentId);
  $("spy-mode").dataset.mode = mine.mode;
  set($("spy-mode"), label("mode", mine.mode));
  set($("spy-since"), t("sup.monitor_since", { time: since(mine.since) }));
}

function filterRow(tr, agentId, data) {
  const q = $("agent-filter").value.trim().toLowerCase();
  tr.hidden = Boolean(q) && !`${agentId} ${data.name || ""} ${data.extension || ""} ${data.state}`.toLowerCase().includes(q);
}

function paintCall(callId) {
  const data = model.calls.get(callId);
  if (!data) return drop("calls", callId);
  const row = rowFor("calls", callId, $("call-list"), () => {
    const c = cells(["caller", "queue", "state", "time", "agent", "actions"]);
    const target = el("select", { class: "small", "aria-label": "queue" });
    c.actions.append(target,
      actionButton("sup.move", () => supervise("move_call", { call_id: callId, queue: target.value })),
      actionButton("sup.to_head", () => supervise("move_call", { call_id: callId, head: true })));
    return { tr: el("tr", {}, Object.values(c)), c, target };
  });
  set(row.c.caller, data.caller_name ? `${data.caller_name} ${data.caller}` : data.caller || "–");
  set(row.c.queue, label("queue", data.queue));
  row.c.state.dataset.state = data.state;
  set(row.c.state, label("call", data.state));
  set(row.c.agent, data.agent_id ? agentName(data.agent_id) : "–");
  set(row.c.time, since(data.since));
  const waiting = data.state === "waiting";
  row.c.actions.hidden = !waiting;
  if (waiting) {
    // Another queue than the caller's own; the head of the line only for one who is not there yet.
    const others = model.queues.filter((q) => q !== data.queue);
    const shown = others.map((q) => `${q}=${label("queue", q)}`).join(",");
    if (row.target.dataset.shown !== shown) {
      row.target.dataset.shown = shown;
      clear(row.target).append(...others.map((q) => option(q, label("queue", q))));
    }
    for (const button of row.c.actions.querySelectorAll("button")) {
      if (button.dataset.i18n === "sup.move") button.disabled = others.length === 0;
      if (button.dataset.i18n === "sup.to_head") button.disabled = data.position === 1;
    }
  }
}

// One alert per queue, metric and subject (the server replaces it, or clears it).
function alertKey(alert) {
  return `${alert.queue}/${alert.metric}/${alert.subject || ""}`;
}

// Figures judged against their targets (the server raises and clears these alerts; docs/acd.md).
const TARGET_ALERTS = new Set(["service_level", "abandon_rate", "longest_wait", "asa", "long_call", "long_pause", "long_wrap_up"]);
const PERCENT_ALERTS = new Set(["service_level", "abandon_rate"]);

function agentName(agentId) {
  const data = model.agents.get(agentId);
  return data && data.name ? `${data.name} (${agentId})` : agentId;
}

function paintAlerts() {
  const list = clear($("alerts"));
  if (!model.alerts.size) list.append(el("li", { class: "muted", "data-i18n": "sup.no_alerts", text: t("sup.no_alerts") }));
  for (const alert of model.alerts.values()) {
    if (TARGET_ALERTS.has(alert.metric)) {
      const fmt = PERCENT_ALERTS.has(alert.metric) ? percent : duration;
      list.append(el("li", { class: `alert alert-${alert.level}`, "data-metric": alert.metric,
        "data-subject": alert.subject || alert.queue, title: alert.text },
        el("b", { text: alert.subject ? agentName(alert.subject) : label("queue", alert.queue) }), " ", t(`alert.${alert.metric}`), " ",
        el("span", { class: "muted", text: `${fmt(alert.value)} / ${fmt(alert.threshold)}` })));
      continue;
    }
    if (alert.metric === "wrapup_draft") {
      // A wrap-up not saved by the queue's maximum: its notes are kept as a draft on the call.
      const [agentId, callId] = (alert.subject || "").split(" ");
      list.append(el("li", { class: `alert alert-${alert.level}`, "data-metric": alert.metric, "data-call-id": callId },
        el("b", { text: agentName(agentId) }), " ", t("alert.wrapup_draft", { call: callId }), " ",
        el("span", { class: "muted", text: alert.text })));
      continue;
    }
    if (alert.metric === "prompt_missing") {
      // A sound file the PBX cannot play: callers go on without it until somebody installs it.
      list.append(el("li", { class: `alert alert-${alert.level}`, "data-metric": alert.metric },
        el("b", { text: t("alert.prompt_missing") }), " ", el("code", { text: alert.subject }), " ",
        el("span", { class: "muted", text: t("alert.prompt_missing_hint") })));
      continue;
    }
    list.append(el("li", { class: `alert alert-${alert.level}`, "data-metric": alert.metric },
      el("b", { text: label("queue", alert.queue) }), ` ${alert.text || alert.metric} `,
      el("span", { class: "muted", text: `${alert.value} / ${alert.threshold}` })));
  }
}

function counts() {
  set($("agent-count"), `(${model.agents.size})`);
  set($("call-count"), `(${model.calls.size})`);
}

function render() {
  const loggedIn = Boolean(model.user);
  show($("login-panel"), !loggedIn);
  show($("monitor"), loggedIn);
  show($("logout"), loggedIn);
  show($("phone-box"), loggedIn);
  if (!loggedIn) $("who").textContent = "";
}

function tick() {
  for (const [agentId, row] of rows.agents) {
    const data = model.agents.get(agentId);
    if (data) set(row.c.time, since(data.since));
  }
  for (const [callId, row] of rows.calls) {
    const data = model.calls.get(callId);
    if (data) set(row.c.time, since(data.since));
  }
  for (const [queue, row] of rows.wallboard) tickQueue(queue, row);
  if (!$("spy-banner").hidden) paintSpyBanner();
}

// ------------------------------------------------------------------ actions

function phone() {
  const value = $("my-phone").value.trim();
  return value ? { extension: value } : {};
}

// The last action's outcome, kept as a key so a language change words it again.
let lastStatus = null;

function paintStatus() {
  const node = $("action-status");
  if (!lastStatus) return;
  node.textContent = lastStatus.text ?? t(lastStatus.key, lastStatus.vars);
  node.dataset.kind = lastStatus.kind;
}

async function supervise(type, fields) {
  const node = $("action-status");
  node.textContent = "";
  lastStatus = null;
  const ext = fields.extension || model.user.extension || "";
  if (type === "spy") {
    // The reply comes once the supervisor's phone is answered (or not): until then, say it rings.
    lastStatus = { key: "sup.monitor_ringing", vars: { ext }, kind: "ok" };
    paintStatus();
  }
  try {
    const reply = await conn.request(type, fields);
    if (reply.type === "error") {
      lastStatus = null;
      const known = t(`err.${reply.reason || reply.code}`);
      node.textContent = known.startsWith("err.") ? reply.message : `${known} (${reply.message})`;
      node.dataset.kind = "error";
    } else {
      const key = type === "spy" ? "sup.monitor_connected" : type === "spy_stop" ? "sup.monitor_stopped" : "sup.done";
      lastStatus = { key, vars: { ext }, kind: "ok" };
      paintStatus();
    }
  } catch {
    node.textContent = t("err.offline");
    node.dataset.kind = "error";
  }
}

bindLogin(conn);
$("spy-stop").addEventListener("click", () => supervise("spy_stop", {}));
$("my-phone").addEventListener("change", () => localStorage.setItem("cti.sup.phone", $("my-phone").value.trim()));
$("agent-filter").addEventListener("input", () => {
  for (const [agentId, row] of rows.agents) filterRow(row.tr, agentId, model.agents.get(agentId) || {});
});

bindToggle($("lang"));
onLangChange(() => {
  const status = $("conn").dataset.status;
  if (status) $("conn").textContent = t(`conn.${status}`);
  for (const key of model.wallboard.keys()) paintQueue(key);
  for (const key of model.agents.keys()) paintAgent(key);
  for (const key of model.calls.keys()) paintCall(key);
  paintAlerts();
  paintSpyBanner();
  paintStatus();
});
mountReports({ token: () => conn.state.token });
apply();
render();
setInterval(tick, 1000);
initSupervisorCrm(conn);
initOutbound(conn, () => model.queues);
conn.connect();
