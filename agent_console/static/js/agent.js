// Agent console: state, offers with their screen pop, call control, wrap-up, search, click-to-call.
import { Connection } from "./connection.js";
import { $, clear, el, option, show } from "./dom.js";
import { dateTime, duration, nowSeconds, since } from "./format.js";
import { apply, bindToggle, label, onLangChange, t } from "./i18n.js";
import { RecordingsPanel } from "./recordings.js";

const POPS_KEY = "cti.agent.pops"; // offer ids already shown (a pop is announced once)
const WORK_KEY = "cti.agent.work"; // the pop on screen and the call awaiting wrap-up, across reloads

const view = {
  user: null,
  config: { queues: [], pause_reasons: [], dispositions: [], wrap_up_s: 30 },
  agent: null,
  calls: new Map(),
  offers: new Map(),
  shown: new Set(JSON.parse(sessionStorage.getItem(POPS_KEY) || "[]")),
  work: JSON.parse(sessionStorage.getItem(WORK_KEY) || "{}"), // {pop, popOfferId, wrapupCallId, endedAt}
};

function saveWork() {
  sessionStorage.setItem(WORK_KEY, JSON.stringify(view.work));
}

const conn = new Connection({
  storageKey: "cti.agent.session",
  onMessage: handle,
  onStatus: (status) => {
    const node = $("conn");
    node.dataset.status = status;
    node.textContent = t(`conn.${status}`);
  },
  onAuth: (msg) => {
    if (msg.user.role !== "agent") {
      $("login-error").textContent = t("err.agent_only");
      conn.logout();
      return;
    }
    view.user = msg.user;
    view.config = msg.config;
    recordings.refresh();
    fillMenus();
    $("who").textContent = msg.user.display_name;
    show($("logout"), true);
  },
  onLoggedOut: () => {
    view.user = null;
    view.agent = null;
    render();
  },
});

const recordings = new RecordingsPanel({ conn, role: "agent" });
recordings.mount({ controls: $("rec-controls"), recordings: $("recordings-card"), voicemails: $("voicemail-card") });

// ------------------------------------------------------------------ messages

function handle(msg) {
  if (!view.user) return; // e.g. a supervisor who opened the agent page: being logged out
  if (recordings.handle(msg)) return;
  switch (msg.type) {
    case "snapshot":
      view.agent = msg.agent;
      view.calls = new Map(msg.calls.filter((c) => c.state !== "ended").map((c) => [c.call_id, c]));
      view.offers = new Map(msg.offers.map((o) => [o.offer_id, o]));
      for (const offer of msg.offers) announce(offer);
      break;
    case "agent_state":
      view.agent = msg.agent;
      break;
    case "offer":
      view.offers.set(msg.offer.offer_id, msg.offer);
      announce(msg.offer);
      break;
    case "offer_cancelled":
      view.offers.delete(msg.offer_id);
      break;
    case "call_state":
      callChanged(msg.call);
      break;
    case "wrapup_saved":
      if (msg.call_id === view.work.wrapupCallId) {
        view.work.wrapupCallId = null;
        saveWork();
        $("wrapup-form").reset();
        show($("fu-fields"), false);
      }
      status("wrapup-status", t("agent.wrapup_saved"), "ok");
      break;
    case "wrapup_failed":
      status("wrapup-status", `${t("agent.wrapup_failed")} ${msg.message}`, "error");
      break;
    default:
      return;
  }
  render();
}

function callChanged(call) {
  if (call.state === "ended") {
    view.calls.delete(call.call_id);
    for (const [id, offer] of view.offers) if (offer.call_id === call.call_id) view.offers.delete(id);
    if (call.talk_since) { // only an answered call has a wrap-up
      view.work.wrapupCallId = call.call_id;
      view.work.endedAt = nowSeconds();
      saveWork();
      status("wrapup-status", "", "");
    }
    return;
  }
  view.calls.set(call.call_id, call);
}

function announce(offer) {
  // A replayed or re-snapshotted offer keeps its card but is not announced again.
  if (view.shown.has(offer.offer_id)) return;
  view.shown.add(offer.offer_id);
  sessionStorage.setItem(POPS_KEY, JSON.stringify([...view.shown].slice(-50)));
  view.work.pop = offer.pop || null;
  view.work.popOffer = { offer_id: offer.offer_id, caller: offer.caller, caller_name: offer.caller_name,
                         queue: offer.queue, ivr_path: offer.ivr_path || [], ivr_said: offer.ivr_said || [] };
  view.work.popCallId = offer.call_id;
  saveWork();
  document.body.dataset.pops = String(Number(document.body.dataset.pops || 0) + 1);
  renderPop();
}

// ------------------------------------------------------------------ rendering

function render() {
  const loggedIn = Boolean(view.user);
  const state = view.agent ? view.agent.state : "logged_out";
  show($("login-panel"), !loggedIn);
  show($("logout"), loggedIn);
  show($("phone-panel"), loggedIn && view.agent !== null && state === "logged_out");
  show($("work"), loggedIn && view.agent !== null && state !== "logged_out");
  show($("state-badge"), loggedIn && view.agent !== null);
  show($("state-time"), loggedIn && view.agent !== null);
  if (!loggedIn) {
    $("who").textContent = "";
    return;
  }
  const badge = $("state-badge");
  badge.dataset.state = state;
  badge.textContent = label("state", state) + (view.agent && view.agent.reason ? ` · ${label("reason", view.agent.reason)}` : "");
  $("my-queues").textContent = view.agent && view.agent.queues.length ? `${t("agent.queues")}: ${view.agent.queues.join(", ")}` : "";
  $("btn-ready").disabled = ["available", "reserved", "on_call", "on_hold"].includes(state);
  $("btn-pause").disabled = state === "paused" && view.agent.reason === $("pause-reason").value;
  renderOffer();
  renderCall();
  renderWrapup();
  renderPop();
  tick();
}

function ringingOffer() {
  for (const offer of view.offers.values()) {
    const call = view.calls.get(offer.call_id);
    if (!call || call.state === "ringing") return offer;
  }
  return null;
}

function currentCall() {
  let best = null;
  for (const call of view.calls.values()) if (call.state !== "ringing" || !best) best = call;
  return best;
}

function renderOffer() {
  const offer = ringingOffer();
  show($("offer-banner"), offer !== null);
  if (!offer) return;
  $("offer-caller").textContent = offer.caller_name ? `${offer.caller_name} ${offer.caller}` : offer.caller;
  $("offer-queue").textContent = `${t("pop.queue")}: ${offer.queue}`;
}

function renderCall() {
  const call = currentCall();
  recordings.setCall(call);
  const active = call !== null && call.state !== "ringing";
  show($("call-panel"), active);
  if (!active) return;
  $("call-caller").textContent = call.caller_name ? `${call.caller_name} ${call.caller}` : call.caller;
  const badge = $("call-state");
  badge.dataset.state = call.state;
  badge.textContent = label("call", call.state) + (call.consult_target ? ` → ${call.consult_target}` : "");
  $("btn-hold").disabled = call.state !== "talking";
  $("btn-unhold").disabled = call.state !== "held";
  const consulting = call.state === "consulting";
  show($("btn-xfer-complete"), consulting);
  show($("btn-xfer-cancel"), consulting);
}

function renderWrapup() {
  show($("wrapup-panel"), Boolean(view.work.wrapupCallId));
}

function flagBadge(flag) {
  return el("span", { class: `flag flag-${flag.flag}`, title: flag.reason || "" },
    label("flag", flag.flag), flag.reason ? el("small", { text: ` ${flag.reason}` }) : null);
}

function renderPop() {
  const pop = view.work.pop;
  const offer = view.work.popOffer;
  show($("pop"), Boolean(offer));
  if (!offer) return;
  $("pop").dataset.offerId = offer.offer_id;
  const customer = pop && pop.customer;
  $("pop-name").textContent = customer ? customer.name : `${t("pop.unknown")} ${offer.caller}`;
  $("pop-company").textContent = customer ? customer.company : "";
  const grade = pop && pop.grade;
  const gradeNode = $("pop-grade");
  show(gradeNode, Boolean(grade));
  gradeNode.dataset.grade = grade || "";
  gradeNode.textContent = grade ? label("grade", grade) : "";
  clear($("pop-flags")).append(...((pop && pop.flags) || []).map(flagBadge));

  const facts = clear($("pop-facts"));
  const fact = (key, value) => {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return;
    facts.append(el("dt", { text: t(key) }), el("dd", { text: Array.isArray(value) ? value.join(", ") : value }));
  };
  fact("pop.caller", offer.caller);
  if (customer) {
    fact("pop.phones", customer.phones);
    fact("pop.accounts", customer.accounts);
    fact("pop.tags", customer.tags);
    fact("pop.language", customer.preferred_language);
    fact("pop.contact_time", customer.contact_time);
    fact("pop.customer_notes", customer.notes);
  }
  if (pop && pop.grade_change) fact("pop.grade_change", `${pop.grade_change.old || "–"} → ${pop.grade_change.new}`);

  const ivr = clear($("pop-ivr"));
  if (offer.ivr_path.length) ivr.append(el("div", {}, el("b", { text: `${t("pop.ivr_path")}: ` }), offer.ivr_path.join(" › ")));
  for (const said of offer.ivr_said) ivr.append(el("div", { class: "said" }, el("b", { text: `${t("pop.caller_said")}: ` }), `“${said}”`));

  const actions = clear($("pop-actions"));
  for (const action of (pop && pop.actions) || []) {
    actions.append(el("li", { class: `action action-${action.kind}`, text: action.text }));
  }
  for (const signal of (pop && pop.churn) || []) {
    actions.append(el("li", { class: "action action-churn", text: `${label("churn", signal.kind)}: ${signal.detail}` }));
  }
  const tickets = clear($("pop-tickets"));
  for (const tk of (pop && pop.open_tickets) || []) {
    tickets.append(el("li", {}, el("b", { text: `#${tk.id} ${tk.category}` }), ` ${tk.subject} `,
      el("span", { class: "muted", text: `${t("pop.due")} ${dateTime(tk.due_at)}` })));
  }
  if (!tickets.childElementCount) tickets.append(el("li", { class: "muted", text: t("common.none") }));
  const followUps = clear($("pop-followups"));
  for (const fu of (pop && pop.due_follow_ups) || []) {
    followUps.append(el("li", {}, el("b", { text: label("fu", fu.kind) }), ` ${fu.note || ""} `,
      el("span", { class: "muted", text: dateTime(fu.due_at) })));
  }
  if (!followUps.childElementCount) followUps.append(el("li", { class: "muted", text: t("common.none") }));
  const history = clear($("pop-history"));
  for (const it of (pop && pop.interactions) || []) {
    history.append(el("tr", {},
      el("td", { text: dateTime(it.started_at) }), el("td", { text: it.queue || "–" }),
      el("td", { text: it.agent || "–" }), el("td", { text: label("disposition", it.disposition) }),
      el("td", { text: it.notes ?? "" })));
  }
}

function status(id, text, kind) {
  const node = $(id);
  node.textContent = text;
  node.dataset.kind = kind;
}

function tick() {
  if (view.agent) $("state-time").textContent = since(view.agent.since);
  const call = currentCall();
  if (call && call.talk_since) $("call-talk").textContent = since(call.talk_since);
  const offer = ringingOffer();
  if (offer) $("offer-timer").textContent = duration(offer.offered_at + offer.ring_timeout_s - nowSeconds());
  if (view.work.wrapupCallId) {
    const until = view.agent && view.agent.wrap_up_until;
    const node = $("wrapup-timer");
    node.textContent = until ? duration(until - nowSeconds()) : since(view.work.endedAt);
    node.dataset.late = String(Boolean(until && until < nowSeconds()));
  }
}

function fillMenus() {
  const reasons = clear($("pause-reason"));
  for (const reason of view.config.pause_reasons) reasons.append(option(reason, label("reason", reason)));
  const dispositions = clear($("wrapup-disposition"));
  dispositions.append(option("", t("agent.choose")));
  for (const code of view.config.dispositions) dispositions.append(option(code, label("disposition", code)));
  const queues = clear($("queue-list"));
  const remembered = JSON.parse(localStorage.getItem("cti.agent.queues") || "null");
  for (const queue of view.config.queues) {
    const box = el("input", { type: "checkbox", value: queue, checked: remembered ? remembered.includes(queue) : true });
    queues.append(el("label", { class: "inline" }, box, ` ${queue}`));
  }
  $("phone-ext").value = localStorage.getItem("cti.agent.extension") || "";
}

// ------------------------------------------------------------------ actions

function errorText(reply) {
  if (!reply || reply.type !== "error") return "";
  const known = t(`err.${reply.reason || reply.code}`);
  return known.startsWith("err.") ? reply.message : `${known} (${reply.message})`;
}

async function act(errorId, type, fields) {
  $(errorId).textContent = "";
  try {
    const reply = await conn.request(type, fields);
    $(errorId).textContent = errorText(reply);
    return reply;
  } catch (err) {
    $(errorId).textContent = t("err.offline");
    return null;
  }
}

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    fn();
  });
}

function onClick(id, fn) {
  $(id).addEventListener("click", fn);
}

onSubmit("login-form", async () => {
  $("login-error").textContent = "";
  try {
    const reply = await conn.login($("login-user").value.trim(), $("login-pass").value);
    if (reply.type === "error") $("login-error").textContent = errorText(reply);
    $("login-pass").value = "";
  } catch {
    $("login-error").textContent = t("err.offline");
  }
});

onSubmit("phone-form", async () => {
  const extension = $("phone-ext").value.trim();
  const queues = [...$("queue-list").querySelectorAll("input:checked")].map((box) => box.value);
  if (!queues.length) {
    $("phone-error").textContent = t("err.choose_queue");
    return;
  }
  localStorage.setItem("cti.agent.extension", extension);
  localStorage.setItem("cti.agent.queues", JSON.stringify(queues));
  await act("phone-error", "agent_login", { extension, queues });
});

onClick("btn-ready", () => act("state-error", "ready"));
onClick("btn-pause", () => act("state-error", "pause", { reason: $("pause-reason").value }));
onClick("btn-agent-logout", () => act("state-error", "agent_logout"));
onClick("logout", () => conn.logout());

const callId = () => (currentCall() || {}).call_id;
onClick("btn-hold", () => act("call-error", "hold", { call_id: callId() }));
onClick("btn-unhold", () => act("call-error", "unhold", { call_id: callId() }));
onClick("btn-hangup", () => act("call-error", "hangup", { call_id: callId() }));
onClick("btn-xfer-complete", () => act("call-error", "transfer_complete", { call_id: callId() }));
onClick("btn-xfer-cancel", () => act("call-error", "transfer_cancel", { call_id: callId() }));
onSubmit("transfer-form", () => act("call-error", "transfer", {
  call_id: callId(), mode: $("xfer-mode").value, target_kind: $("xfer-kind").value,
  target: $("xfer-target").value.trim(),
}));

$("fu-on").addEventListener("change", () => show($("fu-fields"), $("fu-on").checked));

onSubmit("wrapup-form", async () => {
  const fields = { call_id: view.work.wrapupCallId, disposition: $("wrapup-disposition").value,
                   notes: $("wrapup-notes").value };
  if (!fields.disposition) {
    status("wrapup-status", t("err.choose_disposition"), "error");
    return;
  }
  if ($("fu-on").checked) {
    const due = $("fu-due").value;
    if (!due) {
      status("wrapup-status", t("err.choose_due"), "error");
      return;
    }
    // datetime-local is local time without offset: send it with this browser's offset.
    const local = new Date(due);
    const offset = -local.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
    const mm = String(Math.abs(offset) % 60).padStart(2, "0");
    fields.follow_up = { kind: $("fu-kind").value, due_at: `${due.length === 16 ? `${due}:00` : due}${sign}${hh}:${mm}`,
                         note: $("fu-note").value };
  }
  status("wrapup-status", t("agent.saving"), "");
  try {
    const reply = await conn.request("wrapup", fields);
    if (reply.type === "error") status("wrapup-status", errorText(reply), "error");
  } catch {
    status("wrapup-status", t("err.offline"), "error");
  }
});

onSubmit("search-form", async () => {
  const list = clear($("search-results"));
  const reply = await act("dial-error", "search", { q: $("search-q").value.trim(), limit: 20 });
  if (!reply || reply.type !== "search_results") return;
  if (!reply.customers.length) list.append(el("li", { class: "muted", text: t("agent.no_results") }));
  for (const customer of reply.customers) {
    const call = el("button", { type: "button", class: "small", text: t("agent.call"),
      onclick: () => act("dial-error", "dial", { customer_id: customer.id }) });
    list.append(el("li", { class: "result" },
      el("div", {}, el("b", { class: "cust-name", text: customer.name }),
        customer.grade ? el("span", { class: "badge grade", "data-grade": customer.grade, text: customer.grade }) : null),
      el("div", { class: "muted", text: [customer.company, customer.phone].filter(Boolean).join(" · ") }),
      call));
  }
});

onSubmit("dial-form", () => act("dial-error", "dial", { number: $("dial-number").value.trim() }));

// ------------------------------------------------------------------ start

bindToggle($("lang"));
onLangChange(() => {
  if (view.user) fillMenus();
  render();
});
apply();
render();
setInterval(tick, 1000);
conn.connect();
