// The supervisor's outbound panels: campaigns (figures, pause and resume) and callbacks (book, cancel).
// Both are read from the server (campaigns, callbacks) every few seconds while the monitor shows, and
// again after every action; the figures are the server's, nothing is counted here.
import { $, clear, el, option } from "./dom.js";
import { dateTime, percent } from "./format.js";
import { label, onLangChange, t } from "./i18n.js";

let conn = null;
let queues = () => [];
let campaigns = [];
let callbacks = [];
let lastStatus = null;

async function ask(type, fields) {
  try {
    const reply = await conn.request(type, fields);
    if (reply.type === "error") {
      lastStatus = { text: reply.message, kind: "error" };
      paintStatus();
      return null;
    }
    return reply;
  } catch {
    lastStatus = { key: "err.offline", kind: "error" };
    paintStatus();
    return null;
  }
}

function paintStatus() {
  const node = $("ob-status");
  if (!lastStatus) return;
  node.textContent = lastStatus.text ?? t(lastStatus.key, lastStatus.vars);
  node.dataset.kind = lastStatus.kind;
}

// ------------------------------------------------------------------ campaigns

export async function loadCampaigns() {
  const reply = await ask("campaigns", {});
  if (!reply) return;
  campaigns = reply.data.campaigns;
  paintCampaigns();
}

function paintCampaigns() {
  const body = clear($("campaign-list"));
  for (const c of campaigns) {
    const running = c.state === "running";
    const abandon = c.abandon_rate_pct === null ? `– / ${percent(c.abandon_cap_pct)}`
      : `${percent(c.abandon_rate_pct)} / ${percent(c.abandon_cap_pct)}`;
    const abandonCell = el("td", { class: "c-abandon", title: t("ob.abandon_title"), text: abandon });
    if (c.over_cap) abandonCell.dataset.level = "breach";
    const occupancy = c.occupancy_pct === null ? "–"
      : `${percent(c.occupancy_pct)} (${t("ob.agents", { busy: c.agents_busy, free: c.agents_free })})`;
    const toggle = el("button", {
      type: "button", class: running ? "small" : "small primary", "data-action": running ? "pause" : "resume",
      text: t(running ? "ob.pause" : "ob.resume"), onclick: () => setState(c.campaign, running ? "campaign_pause" : "campaign_resume"),
    });
    body.append(el("tr", { "data-key": c.campaign },
      el("td", { class: "c-campaign" }, c.campaign, " ", el("span", { class: "muted", text: label("campaign_kind", c.kind) })),
      el("td", { class: "c-state", "data-state": c.state },
        label("campaign_state", c.state), c.throttled ? ` · ${t("ob.throttled")}` : ""),
      el("td", { class: "c-progress", text: `${percent(c.progress_pct)} · ${t("ob.progress_of", { done: c.done, callable: c.callable })}` }),
      el("td", { class: "c-attempts", text: c.attempts }),
      el("td", { class: "c-connects", text: c.connects }),
      el("td", { class: "c-rpc", text: c.right_party }),
      abandonCell,
      el("td", { class: "c-occupancy", text: occupancy }),
      el("td", { class: "c-penetration", text: `${percent(c.penetration_pct)} (${c.tried}/${c.callable})` }),
      el("td", { class: "c-actions" }, toggle)));
  }
  if (!campaigns.length) body.append(el("tr", {}, el("td", { colspan: "10", class: "muted", text: t("ob.none") })));
}

async function setState(name, command) {
  const reply = await ask(command, { campaign: name });
  if (!reply) return;
  lastStatus = { key: command === "campaign_pause" ? "ob.paused" : "ob.resumed", vars: { name }, kind: "ok" };
  paintStatus();
  await loadCampaigns();
}

// ------------------------------------------------------------------ callbacks

export async function loadCallbacks() {
  const reply = await ask("callbacks", {});
  if (!reply) return;
  callbacks = reply.data.callbacks;
  paintCallbacks();
}

function paintCallbacks() {
  const body = clear($("callback-list"));
  for (const cb of callbacks) {
    body.append(el("tr", { "data-key": cb.callback_id },
      el("td", { class: "c-number", text: cb.number }),
      el("td", { class: "c-name", text: cb.name || "–" }),
      el("td", { class: "c-queue", text: label("queue", cb.queue) }),
      el("td", { class: "c-topic", text: cb.topic || "–" }),
      el("td", { class: "c-due", text: cb.due_at ? dateTime(cb.due_at) : t("cb.now") }),
      el("td", { class: "c-state", "data-state": cb.state, text: label("cb_state", cb.state) }),
      el("td", { class: "c-attempts", text: cb.attempts }),
      el("td", { class: "c-source", text: label("cb_source", cb.source) }),
      el("td", { class: "c-actions" }, el("button", {
        type: "button", class: "small danger", "data-action": "cancel", text: t("cb.cancel"),
        onclick: () => cancelCallback(cb.callback_id) }))));
  }
  if (!callbacks.length) body.append(el("tr", {}, el("td", { colspan: "9", class: "muted", text: t("cb.none") })));
}

function paintQueueChoice() {
  const select = $("cb-queue");
  const shown = queues().join(",");
  if (select.dataset.shown === shown && select.dataset.lang === t("cb.queue")) return;
  const chosen = select.value;
  select.dataset.shown = shown;
  select.dataset.lang = t("cb.queue");
  clear(select).append(...queues().map((q) => option(q, label("queue", q))));
  if (queues().includes(chosen)) select.value = chosen;
}

async function bookCallback() {
  const fields = { number: $("cb-number").value.trim(), queue: $("cb-queue").value };
  const name = $("cb-name").value.trim();
  const topic = $("cb-topic").value.trim();
  const at = $("cb-at").value;
  if (name) fields.name = name;
  if (topic) fields.topic = topic;
  if (at) fields.due_at = new Date(at).toISOString().replace(/\.\d+Z$/, "Z");
  const reply = await ask("callback_book", fields);
  if (!reply) return;
  lastStatus = { key: "cb.booked", vars: { id: reply.data.callback_id }, kind: "ok" };
  paintStatus();
  $("cb-form").reset();
  await loadCallbacks();
}

async function cancelCallback(id) {
  const reply = await ask("callback_cancel", { callback_id: id });
  if (!reply) return;
  lastStatus = { key: "cb.cancelled", vars: { id }, kind: "ok" };
  paintStatus();
  await loadCallbacks();
}

// ------------------------------------------------------------------ wiring

export function initOutbound(connection, knownQueues) {
  conn = connection;
  queues = knownQueues;
  const monitor = $("monitor");
  const refresh = () => {
    if (monitor.hidden) return;
    paintQueueChoice();
    loadCampaigns();
    loadCallbacks();
  };
  $("ob-refresh").addEventListener("click", refresh);
  $("cb-form").addEventListener("submit", (event) => {
    event.preventDefault();
    bookCallback();
  });
  new MutationObserver(refresh).observe(monitor, { attributes: true, attributeFilter: ["hidden"] });
  setInterval(refresh, 5000);
  onLangChange(() => {
    paintCampaigns();
    paintCallbacks();
    paintQueueChoice();
    paintStatus();
  });
}
