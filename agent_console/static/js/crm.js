// CRM work: the customer's card (opened from a search) with its edits, tickets and their history, survey
// results; the agent's follow-up worklist and its calls; the supervisors' churn list and grading on demand.
// Every reply that is a refusal is shown as one line next to the form; nothing is kept half-done.
import { $, clear, el, show } from "./dom.js";
import { label, onLangChange, t } from "./i18n.js";

let conn = null;
let current = null; // the customer file on screen
let newCustomer = false; // the card's form creates a customer (or lead)
let dialling = null; // {follow_up_id, call_id, name} of the follow-up call in progress

function stamp(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(document.documentElement.lang === "en" ? "en-GB" : "zh-CN",
    { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function refusal(reply) {
  if (!reply) return t("err.offline");
  if (reply.type !== "error") return "";
  // A field the CRM refused says which, in the UI's language; the server's reason follows as said.
  const field = reply.field ? t(`crm.bad_${reply.field}`) : "";
  if (field && !field.startsWith("crm.")) return `${field} (${reply.message})`;
  const known = t(`err.${reply.reason || reply.code}`);
  return known.startsWith("err.") ? reply.message : `${known} ${reply.message}`;
}

function say(id, text, kind) {
  const node = $(id);
  node.textContent = text;
  node.dataset.kind = kind;
}

async function ask(statusId, type, fields) {
  try {
    const reply = await conn.request(type, fields);
    if (reply.type === "error") say(statusId, refusal(reply), "error");
    return reply;
  } catch {
    say(statusId, t("err.offline"), "error");
    return null;
  }
}

function gradeBadge(grade) {
  return grade ? el("span", { class: "badge grade", "data-grade": grade, text: label("grade", grade) }) : null;
}

export function flagBadges(flags) {
  return (flags || []).map((f) => el("span", { class: `flag flag-${f.flag}`, title: f.reason || "" },
    label("flag", f.flag), f.reason ? el("small", { text: ` ${f.reason}` }) : null));
}

// ------------------------------------------------------------------ the customer's card

export async function openCustomer(customerId, scroll = true) {
  const reply = await ask("cf-status", "customer_open", { customer_id: customerId });
  if (!reply || reply.type !== "result") return;
  current = reply.data;
  newCustomer = false;
  say("cf-status", "", "");
  say("tk-status", "", "");
  fillForm(current.card);
  renderCard();
  if (scroll) $("crm-card").scrollIntoView({ block: "start" });
}

function startNewCustomer() {
  current = null;
  newCustomer = true;
  fillForm({ name: "", company: "", email: "", notes: "", is_lead: true });
  say("cf-status", "", "");
  renderCard();
}

function fillForm(card) {
  $("cf-name").value = card.name || "";
  $("cf-company").value = card.company || "";
  $("cf-email").value = card.email || "";
  $("cf-notes").value = card.notes || "";
  $("cf-phone").value = "";
  $("cf-lead").checked = Boolean(card.is_lead);
  for (const id of ["cf-name", "cf-email", "cf-phone"]) $(id).removeAttribute("aria-invalid");
}

function renderCard() {
  show($("crm-card"), Boolean(current) || newCustomer);
  show($("cc-details"), Boolean(current));
  if (!current) {
    $("cc-name").textContent = newCustomer ? t("crm.new_customer") : "";
    clear($("cc-grade"));
    clear($("cc-flags"));
    $("cc-company").textContent = "";
    return;
  }
  const card = current.card;
  $("crm-card").dataset.customerId = String(card.id);
  $("cc-name").textContent = card.name || (card.is_lead ? t("crm.lead_no_name") : `#${card.id}`);
  clear($("cc-grade")).append(...[gradeBadge(card.grade)].filter(Boolean));
  clear($("cc-flags")).append(...flagBadges(current.flags));
  $("cc-company").textContent = [card.company, card.is_lead ? t("crm.is_lead") : ""].filter(Boolean).join(" · ");
  const facts = clear($("cc-facts"));
  const fact = (key, value) => {
    if (!value || (Array.isArray(value) && !value.length)) return;
    facts.append(el("dt", { text: t(key) }), el("dd", { text: Array.isArray(value) ? value.join(", ") : value }));
  };
  fact("crm.phones", card.phones);
  fact("crm.email", card.email);
  fact("crm.accounts", card.accounts);
  if (current.grade_change) {
    fact("crm.grade_change", `${current.grade_change.old || "–"} → ${current.grade_change.new} (${stamp(current.grade_change.at)})`);
  }
  renderTickets();
  renderFollowUps();
  const surveys = clear($("cc-surveys"));
  for (const s of current.surveys) {
    surveys.append(el("li", { class: "survey" }, el("b", { class: "score", text: "★".repeat(s.score) + "☆".repeat(5 - s.score) }),
      ` ${s.score}/5 · ${stamp(s.at)} · ${s.queue || "–"} · ${s.agent || "–"}`));
  }
  if (!surveys.childElementCount) surveys.append(el("li", { class: "muted", text: t("common.none") }));
}

function renderTickets() {
  const list = clear($("cc-tickets"));
  for (const { ticket, events } of current.tickets) {
    const item = el("li", { class: "ticket", "data-ticket-id": ticket.id, "data-status": ticket.status },
      el("div", {}, el("b", { text: `#${ticket.id} ${label("category", ticket.category)}` }), ` ${ticket.subject} `,
        el("span", { class: "badge tk-status", "data-status": ticket.status, text: label("ticket", ticket.status) })));
    const history = el("ol", { class: "tk-events" });
    for (const e of events) {
      history.append(el("li", {}, el("span", { class: "muted", text: `${stamp(e.at)} · ${e.actor} · ` }),
        el("b", { text: label("ticket", e.status) }), e.note ? ` — ${e.note}` : ""));
    }
    item.append(history);
    if (ticket.status !== "closed") item.append(ticketControls(ticket));
    list.append(item);
  }
  if (!list.childElementCount) list.append(el("li", { class: "muted", text: t("common.none") }));
}

function ticketControls(ticket) {
  const status = el("select", { class: "small tk-next", "aria-label": "status" },
    ...["pending", "closed", "open"].filter((s) => s !== ticket.status)
      .map((s) => { const o = el("option", { value: s, text: label("ticket", s) }); return o; }));
  const note = el("input", { class: "tk-note", maxlength: "4000", placeholder: t("crm.ticket_note") });
  const visit = el("input", { type: "checkbox", class: "tk-visit", checked: true });
  const visitLabel = el("label", { class: "inline" }, visit, ` ${t("crm.visit_in_3_days")}`);
  const paintVisit = () => show(visitLabel, status.value === "closed");
  status.addEventListener("change", paintVisit);
  const button = el("button", { type: "button", class: "small tk-update", text: t("crm.update_ticket"),
    onclick: async () => {
      const fields = { ticket_id: ticket.id, status: status.value, note: note.value };
      if (status.value === "closed" && visit.checked && document.body.classList.contains("agent")) fields.follow_up_days = 3;
      const reply = await ask("tk-status", "ticket_update", fields);
      if (reply && reply.type === "result") {
        say("tk-status", t(status.value === "closed" ? "crm.ticket_closed" : "crm.ticket_updated"), "ok");
        await openCustomer(current.card.id);
        say("tk-status", t(fields.status === "closed" ? "crm.ticket_closed" : "crm.ticket_updated"), "ok");
      }
    } });
  const row = el("div", { class: "row tk-controls" }, status, note, visitLabel, button);
  paintVisit();
  return row;
}

function renderFollowUps() {
  const list = clear($("cc-followups"));
  for (const item of current.follow_ups) {
    const fu = item.follow_up;
    list.append(el("li", { "data-follow-up-id": fu.id, "data-status": fu.status },
      el("b", { text: label("fu", fu.kind) }), ` ${stamp(fu.due_at)} · ${fu.owner} `,
      el("span", { class: "badge", text: label("fustatus", fu.status) }),
      item.result ? el("div", { class: "muted", text: resultText(item.result) }) : null));
  }
  if (!list.childElementCount) list.append(el("li", { class: "muted", text: t("common.none") }));
}

async function saveCustomer() {
  const fields = { name: $("cf-name").value, company: $("cf-company").value, email: $("cf-email").value,
                   notes: $("cf-notes").value, is_lead: $("cf-lead").checked };
  const phone = $("cf-phone").value.trim();
  fields.phones = phone ? [phone] : [];
  if (current) fields.customer_id = current.card.id;
  for (const id of ["cf-name", "cf-email", "cf-phone"]) $(id).removeAttribute("aria-invalid");
  say("cf-status", t("agent.saving"), "");
  const reply = await ask("cf-status", "customer_save", fields);
  if (!reply) return;
  if (reply.type === "error") {
    const input = { phones: "cf-phone", email: "cf-email", name: "cf-name" }[reply.field];
    if (input) $(input).setAttribute("aria-invalid", "true");
    return;
  }
  await openCustomer(reply.data.customer_id);
  say("cf-status", t("crm.saved"), "ok");
}

async function openTicket() {
  if (!current) return;
  const reply = await ask("tk-status", "ticket_open", { customer_id: current.card.id,
    subject: $("tk-subject").value.trim(), note: $("tk-note").value });
  if (reply && reply.type === "result") {
    $("ticket-form").reset();
    await openCustomer(current.card.id);
    say("tk-status", t("crm.ticket_opened", { id: reply.data.ticket_id }), "ok");
  }
}

// ------------------------------------------------------------------ the worklist

async function loadWorklist() {
  const reply = await ask("wl-status", "worklist", {});
  if (!reply || reply.type !== "result") return;
  const data = reply.data;
  fillList("wl-overdue", data.overdue, true);
  fillList("wl-today", data.due_today, true);
  fillList("wl-done", data.done, false);
  $("worklist").dataset.loaded = String(Date.now());
}

// The CRM keeps "reached: <notes>" / "not reached: <notes>"; shown in the UI's language.
function resultText(result) {
  for (const key of ["not reached", "reached"]) {
    if (result === key || result.startsWith(`${key}: `)) return t(`crm.result_${key.replace(" ", "_")}`) + result.slice(key.length);
  }
  return result;
}

function fillList(id, items, callable) {
  const list = clear($(id));
  for (const item of items) {
    const fu = item.follow_up;
    const who = item.customer_name || item.phone || `#${fu.customer_id}`;
    const li = el("li", { class: callable ? "wl-item callable" : "wl-item", "data-follow-up-id": fu.id },
      el("div", {}, el("a", { href: "#", class: "cust-name", text: who,
        onclick: (ev) => { ev.preventDefault(); openCustomer(fu.customer_id); } }), " ", gradeBadge(item.grade)),
      el("div", { class: "muted", text: `${label("fu", fu.kind)} · ${stamp(callable ? fu.due_at : item.done_at)}${fu.note ? ` · ${fu.note}` : ""}` }),
      item.result ? el("div", { class: "wl-result", text: resultText(item.result) }) : null);
    if (callable) {
      li.append(el("div", { class: "wl-buttons" },
        el("button", { type: "button", class: "small ok wl-call", text: t("agent.call"),
          disabled: Boolean(dialling), onclick: () => callFollowUp(fu.id, who) }),
        el("button", { type: "button", class: "small wl-settle", text: t("crm.settle"),
          disabled: Boolean(dialling), onclick: () => settleFollowUp(fu.id, who) })));
    }
    list.append(li);
  }
  if (!list.childElementCount) list.append(el("li", { class: "muted", text: t("common.none") }));
}

async function callFollowUp(followUpId, who) {
  say("wl-status", t("crm.calling", { who }), "");
  const reply = await ask("wl-status", "follow_up_call", { follow_up_id: followUpId });
  if (!reply || reply.type !== "result") return;
  dialling = { follow_up_id: followUpId, call_id: reply.data.call_id, who };
  $("fu-call-form").reset();
  $("fu-call-who").textContent = t("crm.on_follow_up", { who });
  show($("fu-hangup"), true);
  show($("fu-reached-box"), true);
  show($("fu-call-form"), true);
  say("wl-status", "", "");
  for (const b of document.querySelectorAll(".wl-call, .wl-settle")) b.disabled = true;
}

function settleFollowUp(followUpId, who) {
  // The same result form, without a call: a visit made, a customer who called in.
  dialling = { follow_up_id: followUpId, call_id: null, who };
  $("fu-call-form").reset();
  $("fu-call-who").textContent = t("crm.settling", { who });
  show($("fu-hangup"), false);
  show($("fu-reached-box"), false);
  show($("fu-call-form"), true);
  for (const b of document.querySelectorAll(".wl-call, .wl-settle")) b.disabled = true;
}

async function hangUpFollowUp() {
  if (!dialling) return;
  await ask("wl-status", "hangup", { call_id: dialling.call_id });
}

async function saveFollowUp() {
  if (!dialling) return;
  say("wl-status", t("agent.saving"), "");
  const reply = dialling.call_id === null
    ? await ask("wl-status", "follow_up_close", { follow_up_id: dialling.follow_up_id,
      status: $("fu-done").checked ? "done" : "cancelled", notes: $("fu-notes").value })
    : await ask("wl-status", "follow_up_save", { follow_up_id: dialling.follow_up_id,
      call_id: dialling.call_id, reached: $("fu-reached").checked, done: $("fu-done").checked,
      notes: $("fu-notes").value });
  if (!reply || reply.type !== "result") return;
  dialling = null;
  show($("fu-call-form"), false);
  await loadWorklist();
  if (current) await openCustomer(current.card.id, false); // the card on screen shows it too
  say("wl-status", t(reply.data.call_id ? "crm.follow_up_saved" : "crm.follow_up_settled"), "ok");
}

// ------------------------------------------------------------------ wiring

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    fn();
  });
}

export function initAgentCrm(connection) {
  conn = connection;
  onSubmit("cust-form", saveCustomer);
  onSubmit("ticket-form", openTicket);
  onSubmit("fu-call-form", saveFollowUp);
  $("cc-close").addEventListener("click", () => { current = null; newCustomer = false; renderCard(); });
  $("btn-new-customer").addEventListener("click", startNewCustomer);
  $("wl-refresh").addEventListener("click", loadWorklist);
  $("fu-hangup").addEventListener("click", hangUpFollowUp);
  // The worklist loads when the work screen shows (after the phone login) and every minute while it does.
  const work = $("work");
  new MutationObserver(() => { if (!work.hidden) loadWorklist(); }).observe(work, { attributes: true, attributeFilter: ["hidden"] });
  setInterval(() => { if (!work.hidden && !dialling) loadWorklist(); }, 60_000);
  onLangChange(() => {
    if (current || newCustomer) renderCard();
    if (!work.hidden) loadWorklist();
  });
}

// ------------------------------------------------------------------ supervisors

async function loadChurn() {
  const reply = await ask("grade-status", "churn_list", { limit: 100 });
  if (!reply || reply.type !== "result") return;
  const body = clear($("churn-list"));
  for (const row of reply.data.customers) {
    body.append(el("tr", { "data-key": row.customer_id },
      el("td", { text: row.customer_id }), el("td", { class: "cust-name", text: row.name }),
      el("td", {}, gradeBadge(row.grade) || "–"),
      el("td", { text: row.signals.split("; ").map((s) => {
        const [kind, ...rest] = s.split(": ");
        return `${label("churn", kind)}: ${rest.join(": ")}`;
      }).join("; ") })));
  }
  if (!body.childElementCount) body.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: t("common.none") })));
}

async function runGrading() {
  say("grade-status", t("crm.grading"), "");
  $("btn-grade").disabled = true;
  const reply = await ask("grade-status", "grade_run", {});
  $("btn-grade").disabled = false;
  if (!reply || reply.type !== "result") return;
  const c = reply.data.counts;
  say("grade-status", t("crm.graded", { n: reply.data.graded, a: c.A, b: c.B, c: c.C, changed: reply.data.changed }), "ok");
  await loadChurn();
}

export function initSupervisorCrm(connection) {
  conn = connection;
  $("btn-churn").addEventListener("click", loadChurn);
  $("btn-grade").addEventListener("click", runGrading);
  const monitor = $("monitor");
  new MutationObserver(() => { if (!monitor.hidden) loadChurn(); }).observe(monitor, { attributes: true, attributeFilter: ["hidden"] });
  onLangChange(() => { if (!monitor.hidden) loadChurn(); });
}
