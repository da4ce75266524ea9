// The screen pop, made to be read in two seconds: who (name, else the number as people read it), grade and
// flags, why they call (what they chose in the IVR, in words), then what to do (chips that act), open
// tickets, due follow-ups and the last contacts with agents' names and dates in the UI's language.
import { $, clear, el, show } from "./dom.js";
import { dateTime } from "./format.js";
import { currentLang, label, t } from "./i18n.js";

// A translation, or null when the dictionaries do not know the key.
function known(key, vars) {
  const text = t(key, vars);
  return text === key ? null : text;
}

function humanize(id) {
  const words = String(id).replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : String(id);
}

// A flow's label for a node in the UI's language ({en: ..., zh: ...}, "zh-CN" counts as zh; "" = any).
function flowLabel(labels, node) {
  const texts = labels && labels[node];
  if (!texts) return null;
  const lang = currentLang();
  const key = Object.keys(texts).find((k) => k === lang) || Object.keys(texts).find((k) => k.split(/[-_]/)[0] === lang);
  return texts[key] || texts[""] || null;
}

// A node of the flow in words: the flow's own label if it gave one, else the console's words for the
// demo's nodes (ivr.<node>), else the queue's name, else the node id made readable.
function nodeWords(node, labels) {
  return flowLabel(labels, node) || known(`ivr.${node}`) || known(`queue.${node}`) || humanize(node);
}

// "node", "node:key=1", "node:speech=退款(0.93)", "node:event" (ctiserver.crm_history.records.path_text)
function parseStep(text) {
  const m = /^([^:]+)(?::([a-z_]+)(?:=(.*))?)?$/.exec(text);
  if (!m) return { node: text, event: "node" };
  return { node: m[1], event: m[2] || "node", value: m[3] || "" };
}

// What the caller chose, in words: each key or speech answer followed by the node it led to; without a
// choice, the last place the flow sent them (a VIP fast lane, a queue); else the queue.
export function callReason(ivrPath, queue, labels = {}) {
  const steps = (ivrPath || []).map(parseStep);
  const parts = [];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    if (step.event !== "key" && step.event !== "speech") continue;
    const next = steps.slice(i + 1).find((s) => s.event === "node");
    const how = step.event === "key" ? t("pop.pressed", { key: step.value })
      : t("pop.said", { text: step.value.replace(/\(\d\.\d+\)$/, "") });
    parts.push(next ? `${nodeWords(next.node, labels)} (${how})` : how);
  }
  if (parts.length) return parts.join(" › ");
  const nodes = steps.filter((s) => s.event === "node").map((s) => s.node);
  const last = nodes.length ? nodes[nodes.length - 1] : null;
  if (last && (flowLabel(labels, last) || known(`ivr.${last}`) || known(`queue.${last}`))) return nodeWords(last, labels);
  return queue ? label("queue", queue) : "";
}

function days(iso) {
  const opened = new Date(iso).getTime();
  return Number.isNaN(opened) ? "?" : Math.max(0, Math.floor((Date.now() - opened) / 86400000));
}

// The chips: translated from the pop's data (the CRM's English action texts are not shown), each one
// doing something: look the number up, jump to the ticket or the follow-up, open the history.
function chips(pop, offer, act) {
  const out = [];
  const chip = (kind, text, onclick, title) => out.push(el("li", {},
    el("button", { type: "button", class: `action action-${kind}`, "data-kind": kind.split(" ")[0], title: title || "", onclick }, text)));
  if (!pop || !pop.customer) {
    const number = offer.caller_display || offer.caller;
    if (offer.caller) chip("lead", t("chip.lead"), () => act.lookUp(offer.caller), number);
    else chip("lead", t("chip.lead_unreadable"), () => act.focus("dial-number"));
  }
  for (const flag of (pop && pop.flags) || []) {
    const text = known(`chip.flag.${flag.flag}`) || label("flag", flag.flag);
    chip(`flag action-flag-${flag.flag}`, flag.reason ? `${text} · ${flag.reason}` : text, () => act.scrollTo("pop-flags"), flag.reason);
  }
  const now = Date.now();
  for (const tk of (pop && pop.open_tickets) || []) {
    const category = label("ticket", tk.category);
    const overdue = tk.due_at && new Date(tk.due_at).getTime() < now;
    const text = overdue ? t("chip.ticket_overdue", { category, subject: tk.subject })
      : t("chip.ticket", { category, days: days(tk.opened_at), subject: tk.subject });
    chip("ticket", text, () => act.scrollTo(`ticket-${tk.id}`));
  }
  for (const fu of (pop && pop.due_follow_ups) || []) {
    chip("follow_up", t("chip.follow_up", { kind: label("fu", fu.kind), when: dateTime(fu.due_at) }),
      () => act.scrollTo(`follow-up-${fu.id}`));
  }
  const change = pop && pop.grade_change;
  if (change && change.old) {
    const dropped = change.old < change.new; // A is the best grade
    chip("grade", t(dropped ? "chip.grade_dropped" : "chip.grade_rose", { old: change.old, new: change.new }),
      () => act.scrollTo("pop-history"));
  }
  for (const signal of (pop && pop.churn) || []) {
    chip("churn", t("chip.churn", { what: label("churn", signal.kind) }), () => act.scrollTo("pop-history"), signal.detail);
  }
  for (const action of (pop && pop.actions) || []) {
    if (action.kind !== "survey") continue;
    const score = /(\d)\/5/.exec(action.text || "");
    if (score) chip("survey", t("chip.survey", { score: score[1] }), () => act.scrollTo("pop-history"));
  }
  return out;
}

export function popTitle(pop, offer) {
  const customer = pop && pop.customer;
  if (customer && customer.name) return customer.name;
  if (offer.caller_name) return offer.caller_name;
  const number = offer.caller_display || offer.caller;
  if (customer && customer.is_lead) return number ? `${t("pop.lead_no_name")} · ${number}` : t("pop.lead_no_name");
  if (customer) return number || humanize(`#${customer.id}`);
  return number ? `${t("pop.unknown_caller")} · ${number}` : t("pop.unknown_caller");
}

function flagBadge(flag) {
  return el("span", { class: `flag flag-${flag.flag}`, title: flag.reason || "" },
    label("flag", flag.flag), flag.reason ? el("small", { text: ` ${flag.reason}` }) : null);
}

export function renderPop(work, act) {
  const pop = work.pop;
  const offer = work.popOffer;
  show($("pop"), Boolean(offer));
  if (!offer) return;
  $("pop").dataset.offerId = offer.offer_id;
  $("pop").dataset.callId = work.popCallId || "";
  const customer = pop && pop.customer;
  $("pop-name").textContent = popTitle(pop, offer);
  $("pop-company").textContent = customer ? customer.company : "";
  const grade = (pop && pop.grade) || (customer && customer.grade);
  const gradeNode = $("pop-grade");
  show(gradeNode, Boolean(grade));
  gradeNode.dataset.grade = grade || "";
  gradeNode.textContent = grade ? label("grade", grade) : "";
  clear($("pop-flags")).append(...((pop && pop.flags) || []).map(flagBadge));

  // A campaign call is ours, not theirs: its campaign says why, not a reason for calling.
  const reason = offer.campaign ? "" : callReason(offer.ivr_path, offer.queue, offer.ivr_labels);
  const reasonNode = clear($("pop-reason"));
  show(reasonNode, Boolean(reason || offer.campaign) || offer.ivr_said.length > 0);
  if (reason) reasonNode.append(el("b", { text: `${t("pop.reason")}: ` }), el("span", { class: "reason", text: reason }));
  if (offer.campaign) {
    reasonNode.append(el("b", { text: `${t("campaign.title")}: ` }), el("span", { class: "reason campaign-name", text: offer.campaign }));
  }
  for (const said of offer.ivr_said) reasonNode.append(el("div", { class: "said" }, `${t("pop.caller_said")}: “${said}”`));

  const facts = clear($("pop-facts"));
  const fact = (key, value) => {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return;
    facts.append(el("dt", { text: t(key) }), el("dd", { text: Array.isArray(value) ? value.join(", ") : value }));
  };
  fact("pop.caller", offer.caller_display || offer.caller);
  fact("pop.queue", label("queue", offer.queue));
  if (customer) {
    fact("pop.accounts", customer.accounts);
    fact("pop.tags", customer.tags);
    fact("pop.language", customer.preferred_language);
    fact("pop.contact_time", customer.contact_time);
    fact("pop.customer_notes", customer.notes);
  }

  const trace = clear($("pop-ivr"));
  if (offer.ivr_path.length) {
    trace.append(el("summary", { text: t("pop.ivr_trace") }), el("code", { text: offer.ivr_path.join(" › ") }));
  }
  show(trace, offer.ivr_path.length > 0);

  clear($("pop-actions")).append(...chips(pop, offer, act));

  const tickets = clear($("pop-tickets"));
  for (const tk of (pop && pop.open_tickets) || []) {
    tickets.append(el("li", { id: `ticket-${tk.id}` }, el("b", { text: `#${tk.id} ${label("ticket", tk.category)}` }), ` ${tk.subject} `,
      el("span", { class: "muted", text: tk.due_at ? `${t("pop.due")} ${dateTime(tk.due_at)}` : dateTime(tk.opened_at) })));
  }
  if (!tickets.childElementCount) tickets.append(el("li", { class: "muted", text: t("common.none") }));
  const followUps = clear($("pop-followups"));
  for (const fu of (pop && pop.due_follow_ups) || []) {
    followUps.append(el("li", { id: `follow-up-${fu.id}` }, el("b", { text: label("fu", fu.kind) }), ` ${fu.note || ""} `,
      el("span", { class: "muted", text: dateTime(fu.due_at) })));
  }
  if (!followUps.childElementCount) followUps.append(el("li", { class: "muted", text: t("common.none") }));
  const history = clear($("pop-history"));
  const names = offer.agent_names || {};
  for (const it of ((pop && pop.interactions) || []).slice(0, 5)) {
    history.append(el("tr", {},
      el("td", { text: dateTime(it.started_at) }), el("td", { text: it.queue ? label("queue", it.queue) : "–" }),
      el("td", { text: it.agent ? names[it.agent] || it.agent : "–" }), el("td", { text: label("disposition", it.disposition) }),
      el("td", { text: it.notes ?? "" })));
  }
  if (!history.childElementCount) history.append(el("tr", {}, el("td", { class: "muted", colspan: "5", text: t("pop.no_history") })));
}
