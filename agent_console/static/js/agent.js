// Agent console: state, offers with their screen pop, call control, wrap-up, search, click-to-call.
import { Connection } from "./connection.js";
import { flagBadges, initAgentCrm, openCustomer } from "./crm.js";
import { $, clear, el, option, show } from "./dom.js";
import { duration, nowSeconds, since } from "./format.js";
import { apply, bindToggle, currentLang, label, onLangChange, t } from "./i18n.js";
import { bindLogin } from "./login.js";
import { renderPop as drawPop } from "./pop.js";
import { bindShortcuts, renderDay, renderShortcuts, tickDay } from "./workday.js";
import { RecordingsPanel } from "./recordings.js";
import { Softphone } from "./softphone.js";

const POPS_KEY = "cti.agent.pops"; // offer ids already shown (a pop is announced once)
const WORK_KEY = "cti.agent.work"; // the pop on screen and the call awaiting wrap-up, across reloads

const view = {
  user: null,
  config: { queues: [], pause_reasons: [], dispositions: [], wrap_up_s: 30 },
  agent: null,
  calls: new Map(),
  offers: new Map(),
  shown: new Set(JSON.parse(sessionStorage.getItem(POPS_KEY) || "[]")),
  // {pop, popOffer, popCallId, wrap: {call_id, caller, kept}, campaign} — wrap is the call the wrap-up form
  // is for; campaign: the campaign call last given to this agent (its script and dispositions)
  work: JSON.parse(sessionStorage.getItem(WORK_KEY) || "{}"),
  day: null, // the idle screen's figures (my_day)
};
const DRAFT_DELAY_MS = 700; // the form's content goes to the server this long after the last keystroke

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
    wasAtWork = false;
    phone.stop();
    view.phone = null;
    render();
  },
});

// ------------------------------------------------------------------ the console's own phone

const DIAL_ANSWERS_MS = 30000; // a click-to-call rings the agent's phone first: answered without a click
view.phone = null; // {extension, account} when this console is the agent's phone
view.phoneNotice = "";
view.quality = null;
let dialledAt = 0;

const phone = new Softphone({
  onState: (state, detail) => {
    if (view.phone) {
      conn.request("phone_state", { extension: view.phone.extension, state, ...(detail ? { detail } : {}) })
        .catch(() => {}); // offline: the state is sent again with the next change or reconnection
    }
    view.phoneNotice = state === "registered" ? "" : t(`phone.detail.${detail || state}`);
    render();
  },
  onIncoming: () => {
    const agent = view.agent;
    if (!agent || agent.state === "logged_out") {
      view.phoneNotice = t("phone.refused_logged_out");
      render();
      return "refuse";
    }
    const dialled = Date.now() - dialledAt < DIAL_ANSWERS_MS;
    return (view.phone && view.phone.account.auto_answer) || dialled ? "answer" : "ring";
  },
  onSession: (what) => {
    if (what !== "answered") view.quality = null;
    render();
  },
  onQuality: (quality) => {
    view.quality = quality;
    renderQuality();
  },
});
window.__softphone = phone; // read by the browser tests (statistics, digits sent)

async function startPhone(extension) {
  let reply;
  try {
    reply = await conn.request("phone_account", { extension });
  } catch {
    return false;
  }
  if (!reply || reply.type !== "result") {
    $("phone-error").textContent = errorText(reply);
    return false;
  }
  const account = reply.data.account;
  if (!account) { // a desk phone
    phone.stop();
    view.phone = null;
    return true;
  }
  if (view.phone && view.phone.extension === extension && phone.ua) return true;
  view.phone = { extension, account };
  view.phoneNotice = t("phone.registering");
  render();
  await phone.start(account);
  await fillDevices();
  // Wait a moment for the registration: the server pauses an agent whose phone is not registered anyway.
  for (let i = 0; i < 50 && phone.state !== "registered" && phone.state !== "failed"; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

async function fillDevices() {
  const { mics, speakers } = await phone.devices();
  show($("phone-devices"), Boolean(view.phone));
  for (const [id, list, chosen] of [["mic-select", mics, phone.micId], ["speaker-select", speakers, phone.speakerId]]) {
    const select = clear($(id));
    select.append(option("", t("phone.default_device")));
    list.forEach((d, i) => select.append(option(d.deviceId, d.label || `${id === "mic-select" ? t("phone.microphone") : t("phone.speaker")} ${i + 1}`)));
    select.value = chosen;
  }
}

function renderPhone() {
  const badge = $("phone-status");
  const soft = Boolean(view.phone);
  // What the PBX says of the phone (not reachable, registration gone) is news the phone cannot give itself.
  const said = soft && view.agent ? view.agent.phone_detail || "" : "";
  const state = said.startsWith("pbx_") ? "unregistered" : phone.state;
  show(badge, soft);
  if (soft) {
    badge.dataset.state = state;
    badge.textContent = t(`phone.state.${state}`);
  }
  const notice = $("phone-message");
  const text = said.startsWith("pbx_") ? t(`phone.detail.${said}`) : view.phoneNotice;
  notice.textContent = text;
  notice.dataset.detail = said;
  show(notice, Boolean(text));
  show($("btn-mute"), soft && phone.inCall);
  $("btn-mute").textContent = t(phone.muted ? "phone.unmute" : "phone.mute");
  $("btn-mute").dataset.muted = String(phone.muted);
  show($("dtmf-pad"), soft && phone.inCall);
  renderQuality();
}

function renderQuality() {
  const node = $("call-quality");
  const q = view.quality;
  show(node, Boolean(q) && phone.inCall);
  if (!q) return;
  node.dataset.grade = q.grade;
  node.textContent = `${t(`phone.quality.${q.grade}`)} · ${t("phone.quality_detail", {
    loss: q.loss_pct.toFixed(1), jitter: Math.round(q.jitter_ms), rtt: q.rtt_ms === null ? "–" : Math.round(q.rtt_ms) })}`;
}

const recordings = new RecordingsPanel({ conn, role: "agent" });
recordings.mount({ controls: $("rec-controls"), recordings: $("recordings-card"), voicemails: $("voicemail-card") });

// ------------------------------------------------------------------ messages

function handle(msg) {
  if (!view.user) return; // e.g. a supervisor who opened the agent page: being logged out
  if (recordings.handle(msg)) return;
  switch (msg.type) {
    case "snapshot":
      view.agent = msg.agent;
      phoneFollowsAgent(true);
      wrapFollowsAgent();
      refreshDay();
      view.calls = new Map(msg.calls.filter((c) => c.state !== "ended").map((c) => [c.call_id, c]));
      view.offers = new Map(msg.offers.map((o) => [o.offer_id, o]));
      for (const offer of msg.offers) announce(offer);
      break;
    case "agent_state":
      view.agent = msg.agent;
      phoneFollowsAgent();
      wrapFollowsAgent();
      refreshDay();
      break;
    case "offer":
      view.offers.set(msg.offer.offer_id, msg.offer);
      announce(msg.offer);
      break;
    case "offer_cancelled":
      view.offers.delete(msg.offer_id);
      if (view.work.popOffer && view.work.popOffer.offer_id === msg.offer_id) { // never connected: no pop
        view.work.pop = null;
        view.work.popOffer = null;
        view.work.popCallId = null;
        saveWork();
      }
      break;
    case "call_state":
      callChanged(msg.call);
      break;
    case "campaign_call":
      campaignCall(msg);
      break;
    case "wrapup_saved":
      if (view.work.wrap && msg.call_id === view.work.wrap.call_id) closeWrap();
      if (view.work.campaign && msg.call_id === view.work.campaign.call_id) view.work.campaign = null;
      if (msg.call_id === view.work.popCallId) { // the call is done with: its pop goes too
        view.work.pop = null;
        view.work.popOffer = null;
        view.work.popCallId = null;
      }
      saveWork();
      status("wrapup-status", t("agent.wrapup_saved"), "ok");
      refreshDay();
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
    const campaign = view.work.campaign;
    if (campaign && campaign.call_id === call.call_id && campaign.state !== "talking"
        && view.work.popCallId === call.call_id) { // never put through: nobody was spoken to, no card
      view.work.pop = null;
      view.work.popOffer = null;
      view.work.popCallId = null;
      saveWork();
    }
    for (const [id, offer] of view.offers) if (offer.call_id === call.call_id) view.offers.delete(id);
    // An ACD call's wrap-up is the server's (agent_state names its call); a click-to-call has none there,
    // but its form is opened here, tied to it.
    if (call.talk_since && call.direction === "outbound" && !view.work.wrap) {
      openWrap({ call_id: call.call_id, caller: call.caller_name || call.caller_display || call.caller, kept: true });
    }
    if (call.direction === "outbound" && call.outcome) { // what came of the agent's own call stays in sight
      const node = $("dial-result");
      node.textContent = t("outbound.result", { number: call.caller_display || call.caller,
                                                outcome: label("outcome", call.outcome) });
      node.dataset.outcome = call.outcome;
    }
    return;
  }
  view.calls.set(call.call_id, call);
}

// A campaign call the dialer gives this agent: the card pops when their phone rings (as an offer's does),
// the campaign's script shows beside the call, and its wrap-up offers the campaign's own dispositions.
function campaignCall(msg) {
  const first = !view.work.campaign || view.work.campaign.call_id !== msg.call_id;
  view.work.campaign = { call_id: msg.call_id, campaign: msg.campaign, script: msg.script, name: msg.name,
                         number: msg.number, dispositions: msg.dispositions, state: msg.state };
  if (first) {
    view.work.pop = msg.pop || null;
    view.work.popOffer = { offer_id: "", caller: msg.number, caller_name: msg.name, caller_display: msg.number,
                           queue: msg.queue, ivr_path: [], ivr_said: [], agent_names: {}, ivr_labels: {},
                           campaign: msg.campaign };
    view.work.popCallId = msg.call_id;
    document.body.dataset.pops = String(Number(document.body.dataset.pops || 0) + 1);
  }
  saveWork();
  const known = view.calls.get(msg.call_id);
  view.calls.set(msg.call_id, { ...(known || {}), call_id: msg.call_id, state: msg.state, caller: msg.number,
    caller_name: msg.name, caller_display: msg.number, queue: msg.queue, direction: "outbound",
    campaign: msg.campaign, talk_since: msg.state === "talking" ? (known && known.talk_since) || nowSeconds() : null });
}

// The campaign whose call `callId` is, or null (its wrap-up then offers the site's dispositions).
function campaignOf(callId) {
  const campaign = view.work.campaign;
  return campaign && callId && campaign.call_id === callId ? campaign : null;
}

// Logged out: the phone goes too (no call may ring a console that is not at work). A console opened again
// on an agent at work (a reload) gets its phone back. Only a log-out takes the phone, the agent going from
// at work to logged out: starting work registers the phone before the login, and news of the agent still
// logged out meanwhile (the PBX's word on the new contact) must not cost a second registration.
function phoneFollowsAgent(reconnected = false) {
  const agent = view.agent;
  const atWork = Boolean(agent) && agent.state !== "logged_out";
  const loggedOut = wasAtWork && !atWork;
  wasAtWork = atWork;
  if (!atWork) {
    if (loggedOut && view.phone) {
      phone.stop();
      view.phone = null;
      view.phoneNotice = "";
    }
    return;
  }
  if (!view.phone && agent.extension && !phoneStarting) {
    phoneStarting = true;
    startPhone(agent.extension).finally(() => { phoneStarting = false; });
  } else if (reconnected && view.phone && phone.state !== "unregistered") {
    // the server learns the phone's state again after a reconnection of the console
    conn.request("phone_state", { extension: view.phone.extension, state: phone.state,
                                  ...(phone.detail ? { detail: phone.detail } : {}) }).catch(() => {});
  }
}
let phoneStarting = false;
let wasAtWork = false; // the agent as the last news said: at work or not

// ------------------------------------------------------------------ the wrap-up belongs to its call

// The form follows the server: in wrap-up it is the form of agent.wrap_call_id (opened once per call, and
// sent at once, which keeps the agent in wrap-up while it is open); when the wrap-up ends unsaved, the
// notes are the server's draft on that call and the form closes saying so.
function wrapFollowsAgent() {
  const agent = view.agent;
  const wrap = view.work.wrap;
  if (agent && agent.state === "wrap_up" && agent.wrap_call_id) {
    if (!wrap || wrap.call_id !== agent.wrap_call_id) {
      openWrap({ call_id: agent.wrap_call_id, caller: agent.wrap_caller, kept: false });
    }
    // After a reload the form is empty but the server has what it held: take it back, never send an
    // empty form over it.
    const saved = agent.wrap_draft;
    if (saved && !$("wrapup-notes").value && !$("wrapup-disposition").value) {
      $("wrapup-notes").value = saved.notes || "";
      $("wrapup-disposition").value = saved.disposition || "";
    }
    if (!agent.wrap_held) sendDraft();
    return;
  }
  if (wrap && !wrap.kept) {
    const kept = ((agent && agent.drafts) || []).find((d) => d.call_id === wrap.call_id);
    if (kept) showKept(kept);
    closeWrap();
  }
}

function openWrap(wrap) {
  view.work.wrap = wrap;
  saveWork();
  $("wrapup-form").reset();
  show($("fu-fields"), false);
  status("wrapup-status", "", "");
  show($("wrap-kept"), false);
  fillDispositions();
}

// The form's dispositions: a campaign call's are exactly its campaign's (the server refuses any other),
// any other call's are the site's.
function fillDispositions() {
  const wrap = view.work.wrap;
  const campaign = campaignOf(wrap && wrap.call_id);
  const codes = campaign ? campaign.dispositions.map((d) => d.name) : view.config.dispositions;
  const select = $("wrapup-disposition");
  const key = [campaign ? campaign.call_id : "", currentLang(), ...codes].join("|");
  if (select.dataset.filled === key) return;
  const chosen = select.value;
  select.dataset.filled = key;
  select.dataset.campaign = campaign ? campaign.campaign : "";
  clear(select).append(option("", t("agent.choose")), ...codes.map((code) => option(code, label("disposition", code))));
  if (codes.includes(chosen)) select.value = chosen;
}

// A campaign disposition that books a call back needs its time: the follow-up's date, as a call back.
function dispositionChosen() {
  const wrap = view.work.wrap;
  const campaign = campaignOf(wrap && wrap.call_id);
  const meaning = campaign && campaign.dispositions.find((d) => d.name === $("wrapup-disposition").value);
  if (!meaning || meaning.then !== "call_back") return;
  $("fu-on").checked = true;
  $("fu-kind").value = "callback";
  show($("fu-fields"), true);
  $("fu-due").focus();
}

function closeWrap() {
  view.work.wrap = null;
  saveWork();
  clearTimeout(draftTimer);
  $("wrapup-form").reset();
  show($("fu-fields"), false);
}

function showKept(draft) {
  const notice = $("wrap-kept");
  notice.textContent = t("wrap.kept", { caller: draft.caller || draft.call_id, call: draft.call_id });
  notice.dataset.callId = draft.call_id;
  show(notice, true);
}

function openDraft(draft) {
  openWrap({ call_id: draft.call_id, caller: draft.caller, kept: true });
  $("wrapup-disposition").value = draft.disposition || "";
  $("wrapup-notes").value = draft.notes || "";
  render();
  $("wrapup-notes").focus();
}

let draftTimer = null;
function sendDraft() {
  const wrap = view.work.wrap;
  if (!wrap || wrap.kept) return;
  clearTimeout(draftTimer);
  conn.request("wrapup_draft", { call_id: wrap.call_id, disposition: $("wrapup-disposition").value,
                                 notes: $("wrapup-notes").value }).catch(() => {});
}

function draftChanged() {
  clearTimeout(draftTimer);
  draftTimer = setTimeout(sendDraft, DRAFT_DELAY_MS);
}

// ------------------------------------------------------------------ the idle screen

let dayAsked = 0;
async function refreshDay() {
  if (!view.user || !view.agent || view.agent.state === "logged_out") return;
  const asked = ++dayAsked;
  try {
    const reply = await conn.request("my_day", {});
    if (asked === dayAsked && reply.type === "result") {
      view.day = reply.data;
      render();
    }
  } catch {
    // offline: the next state change asks again
  }
}

const popActions = {
  lookUp: (number) => {
    $("search-q").value = number.replace(/^\+/, "");
    $("search-form").requestSubmit();
    $("search-q").focus();
  },
  focus: (id) => $(id).focus(),
  scrollTo: (id) => {
    const node = document.getElementById(id);
    if (!node) return;
    node.scrollIntoView({ block: "center" });
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), 1500);
  },
};

const dayActions = {
  dial: (customerId) => act("dial-error", "dial", { customer_id: customerId }),
  openDraft,
};

function announce(offer) {
  // A replayed or re-snapshotted offer keeps its card but is not announced again.
  if (view.shown.has(offer.offer_id)) return;
  view.shown.add(offer.offer_id);
  sessionStorage.setItem(POPS_KEY, JSON.stringify([...view.shown].slice(-50)));
  view.work.pop = offer.pop || null;
  view.work.popOffer = { offer_id: offer.offer_id, caller: offer.caller, caller_name: offer.caller_name,
                         caller_display: offer.caller_display, queue: offer.queue, ivr_path: offer.ivr_path || [],
                         ivr_said: offer.ivr_said || [], agent_names: offer.agent_names || {},
                         ivr_labels: offer.ivr_labels || {} };
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
  $("my-queues").textContent = view.agent && view.agent.queues.length ? `${t("agent.queues")}: ${view.agent.queues.map((q) => label("queue", q)).join(", ")}` : "";
  $("btn-ready").disabled = ["available", "reserved", "on_call", "on_hold"].includes(state);
  $("btn-pause").disabled = state === "paused" && view.agent.reason === $("pause-reason").value;
  renderOffer();
  renderCall();
  renderCampaign();
  renderPhone();
  renderWrapup();
  renderPop();
  const idle = ["available", "paused", "not_responding"].includes(state) && !ringingOffer() && !currentCall()
    && !view.work.wrap;
  show($("day-panel"), idle && Boolean(view.day));
  if (idle) renderDay(view.day, dayActions);
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
  const soft = Boolean(view.phone);
  // The console's phone may ring before the offer's message arrives (or with none: a click-to-call).
  show($("offer-banner"), offer !== null || (soft && phone.ringing));
  if (!offer && !(soft && phone.ringing)) return;
  const callback = offer ? offer.callback : null; // a callback's turn: the agent calls back, and sees what it is about
  $("offer-banner").dataset.callback = callback ? callback.callback_id : "";
  if (offer) {
    const number = offer.caller_display || offer.caller;
    $("offer-caller").textContent = offer.caller_name ? `${offer.caller_name} · ${number}` : number || t("pop.unknown_caller");
    $("offer-queue").textContent = `${t("pop.queue")}: ${label("queue", offer.queue)}`;
    if (callback) {
      $("offer-queue").textContent += ` · ${t("offer.callback", { topic: callback.topic || "–",
                                                                   attempts: callback.attempts })}`;
    }
  } else {
    const who = phone.session.remote_identity;
    $("offer-caller").textContent = (who && (who.display_name || who.uri.user)) || t("pop.unknown_caller");
    $("offer-queue").textContent = "";
  }
  const atConsole = Boolean(view.agent && view.agent.answer_at_console);
  show($("offer-auto"), (Boolean(view.agent && view.agent.auto_answer) && !atConsole)
    || (soft && view.phone.account.auto_answer));
  show($("offer-console"), atConsole && !soft);
  show($("offer-title"), !atConsole && !soft);
  show($("offer-title-console"), atConsole || soft);
  // answer: console: the phone is dialled only on this click, and then picks up by itself. The console's
  // own phone answers here.
  const answer = $("btn-answer");
  show(answer, atConsole || (soft && !view.phone.account.auto_answer));
  const id = offer ? offer.offer_id : "phone";
  if (answer.dataset.offerId !== id) {
    answer.dataset.offerId = id;
    answer.disabled = false;
    $("offer-error").textContent = "";
  }
  if (soft) answer.disabled = !phone.ringing;
}

function renderCall() {
  const call = currentCall();
  recordings.setCall(call);
  const active = call !== null && call.state !== "ringing";
  show($("call-panel"), active);
  if (!active) return;
  const number = call.caller_display || call.caller;
  $("call-caller").textContent = call.caller_name ? `${call.caller_name} · ${number}` : number;
  const badge = $("call-state");
  badge.dataset.state = call.state;
  badge.textContent = label("call", call.state) + (call.consult_target ? ` → ${call.consult_target}` : "");
  $("btn-hold").disabled = call.state !== "talking";
  $("btn-unhold").disabled = call.state !== "held";
  const consulting = call.state === "consulting";
  show($("btn-xfer-complete"), consulting);
  show($("btn-xfer-cancel"), consulting);
}

function renderCampaign() {
  const call = currentCall();
  const wrap = view.work.wrap;
  const campaign = campaignOf(call && call.call_id) || campaignOf(wrap && wrap.call_id);
  show($("campaign-panel"), Boolean(campaign));
  if (!campaign) return;
  $("campaign-panel").dataset.callId = campaign.call_id;
  $("campaign-name").textContent = campaign.campaign;
  $("campaign-script").textContent = campaign.script || t("campaign.no_script");
}

function renderWrapup() {
  const wrap = view.work.wrap;
  show($("wrapup-panel"), Boolean(wrap));
  if (!wrap) return;
  fillDispositions();
  const campaign = campaignOf(wrap.call_id);
  $("wrapup-panel").dataset.callId = wrap.call_id;
  $("wrapup-panel").dataset.campaign = campaign ? campaign.campaign : "";
  $("wrapup-for").textContent = t(wrap.kept ? "wrap.editing_draft" : "wrap.for",
    { caller: wrap.caller || (campaign && (campaign.name || campaign.number)) || t("pop.unknown_caller"),
      call: wrap.call_id });
  show($("wrapup-held"), Boolean(!wrap.kept && view.agent && view.agent.wrap_held));
}

function renderPop() {
  drawPop(view.work, popActions);
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
  const wrap = view.work.wrap;
  const agent = view.agent;
  const live = wrap && !wrap.kept && agent && agent.state === "wrap_up" && agent.wrap_call_id === wrap.call_id;
  const node = $("wrapup-timer");
  const maxNode = $("wrapup-max");
  node.textContent = "";
  maxNode.textContent = "";
  node.dataset.late = "false";
  if (live && agent.wrap_up_until) {
    const left = agent.wrap_up_until - nowSeconds();
    node.textContent = left >= 0 ? t("wrap.left", { time: duration(left) }) : t("wrap.over", { time: duration(-left) });
    node.dataset.late = String(left < 0);
    if (agent.wrap_up_max_at) maxNode.textContent = t("wrap.max", { time: duration(agent.wrap_up_max_at - nowSeconds()) });
  }
  tickDay();
}

function fillMenus() {
  const reasons = clear($("pause-reason"));
  for (const reason of view.config.pause_reasons) reasons.append(option(reason, label("reason", reason)));
  $("wrapup-disposition").dataset.filled = "";
  fillDispositions();
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
  if (type === "dial" || type === "follow_up_call") dialledAt = Date.now(); // the agent's phone rings first
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

bindLogin(conn, errorText);

onSubmit("phone-form", async () => {
  const extension = $("phone-ext").value.trim();
  const queues = [...$("queue-list").querySelectorAll("input:checked")].map((box) => box.value);
  if (!queues.length) {
    $("phone-error").textContent = t("err.choose_queue");
    return;
  }
  localStorage.setItem("cti.agent.extension", extension);
  localStorage.setItem("cti.agent.queues", JSON.stringify(queues));
  $("phone-error").textContent = "";
  if (!(await startPhone(extension))) return;
  const reply = await act("phone-error", "agent_login", { extension, queues });
  if (!reply || reply.type === "error") { // not at work: the phone must not ring
    phone.stop();
    view.phone = null;
    view.phoneNotice = "";
    render();
  }
});

onClick("btn-ready", () => act("state-error", "ready"));
onClick("btn-pause", () => act("state-error", "pause", { reason: $("pause-reason").value }));
onClick("btn-agent-logout", () => act("state-error", "agent_logout"));

const callId = () => (currentCall() || {}).call_id;
onClick("btn-answer", async () => {
  const answer = $("btn-answer");
  if (view.phone) { // the console is the phone: answer the ringing INVITE here
    if (phone.answer()) answer.disabled = true;
    return;
  }
  answer.disabled = true;
  const reply = await act("offer-error", "answer", { offer_id: answer.dataset.offerId });
  if (!reply || reply.type === "error") answer.disabled = false;
});
onClick("btn-hold", () => act("call-error", "hold", { call_id: callId() }));
onClick("btn-unhold", () => act("call-error", "unhold", { call_id: callId() }));
onClick("btn-hangup", () => {
  const id = callId();
  if (!id && view.phone && phone.session) { // a leg the server does not follow (yet): end it here
    phone.session.terminate();
    return;
  }
  act("call-error", "hangup", { call_id: id });
});
onClick("btn-mute", () => {
  phone.mute(!phone.muted);
  render();
});
for (const digit of "123456789*0#") {
  $("dtmf-pad").append(el("button", { type: "button", class: "small key", text: digit, "data-digit": digit,
                                      onclick: () => phone.dtmf(digit) }));
}
$("mic-select").addEventListener("change", () => phone.chooseMic($("mic-select").value));
$("speaker-select").addEventListener("change", () => phone.chooseSpeaker($("speaker-select").value));
onClick("btn-xfer-complete", () => act("call-error", "transfer_complete", { call_id: callId() }));
onClick("btn-xfer-cancel", () => act("call-error", "transfer_cancel", { call_id: callId() }));
onSubmit("transfer-form", () => act("call-error", "transfer", {
  call_id: callId(), mode: $("xfer-mode").value, target_kind: $("xfer-kind").value,
  target: $("xfer-target").value.trim(),
}));

$("fu-on").addEventListener("change", () => show($("fu-fields"), $("fu-on").checked));

$("wrapup-notes").addEventListener("input", draftChanged);
$("wrapup-disposition").addEventListener("change", draftChanged);
$("wrapup-disposition").addEventListener("change", dispositionChosen);
$("wrapup-notes").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("wrapup-form").requestSubmit();
});

onSubmit("wrapup-form", async () => {
  if (!view.work.wrap) return;
  clearTimeout(draftTimer);
  const fields = { call_id: view.work.wrap.call_id, disposition: $("wrapup-disposition").value,
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
  if (!reply.customers.length) list.append(el("li", { class: "muted", i18n: "agent.no_results", text: t("agent.no_results") }));
  for (const customer of reply.customers) {
    const call = el("button", { type: "button", class: "small", text: t("agent.call"),
      onclick: () => act("dial-error", "dial", { customer_id: customer.id }) });
    const open = el("a", { href: "#", class: "cust-name open-card", text: customer.name || customer.phones[0] || `#${customer.id}`,
      onclick: (event) => { event.preventDefault(); openCustomer(customer.id); } });
    list.append(el("li", { class: "result", "data-customer-id": customer.id },
      el("div", {}, open, " ",
        customer.grade ? el("span", { class: "badge grade", "data-grade": customer.grade, text: customer.grade }) : null,
        ...flagBadges(customer.flags)),
      el("div", { class: "muted", text: [customer.company, customer.phone].filter(Boolean).join(" · ") }),
      call));
  }
});

onSubmit("dial-form", () => act("dial-error", "dial", { number: $("dial-number").value.trim() }));

// ------------------------------------------------------------------ start

bindToggle($("lang"));
onLangChange(() => {
  if (view.user) fillMenus();
  const connNode = $("conn");
  if (connNode.dataset.status) connNode.textContent = t(`conn.${connNode.dataset.status}`);
  renderShortcuts();
  render();
});
apply();
renderShortcuts();
bindShortcuts();
render();
setInterval(tick, 1000); // display only: the clocks on screen; every state comes from the server
// The idle screen's figures and waiting callers, while it shows (display only, never a decision).
setInterval(() => {
  if (!document.hidden && !$("day-panel").hidden) refreshDay();
}, 10000);
initAgentCrm(conn);
conn.connect();
