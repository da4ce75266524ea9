// The idle screen (the agent's day: figures, callers waiting in their queues, due follow-ups, wrap-ups
// kept as drafts) and the keyboard shortcuts. The server computes everything; this only shows it.
import { $, clear, el, show } from "./dom.js";
import { dateTime, duration, nowSeconds, percent } from "./format.js";
import { label, t } from "./i18n.js";

// Alt + a letter: layout-independent (event.code), so they work with a Chinese input method too.
export const SHORTCUTS = [
  { code: "KeyA", keys: "Alt+A", what: "keys.answer", button: "btn-answer" },
  { code: "KeyR", keys: "Alt+R", what: "keys.ready", button: "btn-ready" },
  { code: "KeyP", keys: "Alt+P", what: "keys.pause", button: "btn-pause" },
  { code: "KeyH", keys: "Alt+H", what: "keys.hold", button: ["btn-hold", "btn-unhold"] },
  { code: "KeyT", keys: "Alt+T", what: "keys.transfer", focus: "xfer-target" },
  { code: "KeyX", keys: "Alt+X", what: "keys.hangup", button: "btn-hangup" },
  { code: "KeyS", keys: "Alt+S", what: "keys.save", button: "btn-save-wrapup" },
  { code: "KeyF", keys: "Alt+F", what: "keys.search", focus: "search-q" },
];

function usable(node) {
  return node && !node.disabled && node.offsetParent !== null;
}

export function bindShortcuts() {
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    const shortcut = SHORTCUTS.find((s) => s.code === event.code);
    if (!shortcut) return;
    if (shortcut.focus) {
      const node = document.getElementById(shortcut.focus);
      if (!usable(node)) return;
      event.preventDefault();
      node.focus();
      node.select?.();
      return;
    }
    const ids = Array.isArray(shortcut.button) ? shortcut.button : [shortcut.button];
    const button = ids.map((id) => document.getElementById(id)).find(usable);
    if (!button) return;
    event.preventDefault();
    button.click();
  });
}

export function renderShortcuts() {
  const list = clear($("shortcut-list"));
  for (const s of SHORTCUTS) list.append(el("li", {}, el("kbd", { text: s.keys }), " ", t(s.what)));
  for (const s of SHORTCUTS) {
    for (const id of [s.button, s.focus].flat().filter(Boolean)) {
      const node = document.getElementById(id);
      if (node) node.title = `${t(s.what)} (${s.keys})`;
    }
  }
}

// ------------------------------------------------------------------ the idle screen

export function renderDay(day, act) {
  show($("day-panel"), Boolean(day));
  if (!day) return;
  $("day-calls").textContent = String(day.calls);
  $("day-aht").textContent = day.aht_s === null ? "–" : duration(day.aht_s);
  $("day-occupancy").textContent = percent(day.occupancy_pct);

  const waiting = clear($("day-waiting"));
  for (const q of day.waiting) {
    const row = el("li", { "data-queue": q.queue, "data-waiting": String(q.waiting) },
      el("b", { text: label("queue", q.queue) }), " ",
      el("span", { class: `count${q.waiting ? " hot" : ""}`, text: String(q.waiting) }));
    if (q.oldest_since) row.append(" ", el("span", { class: "muted timer", "data-since": String(q.oldest_since),
      text: duration(nowSeconds() - q.oldest_since) }));
    if (q.callbacks) row.append(" ", el("span", { class: "muted", text: `+${q.callbacks} ${t("day.callbacks")}` }));
    waiting.append(row);
  }
  if (!day.waiting.length) waiting.append(el("li", { class: "muted", text: t("day.none_waiting") }));

  const followUps = clear($("day-followups"));
  for (const fu of day.follow_ups) {
    followUps.append(el("li", { class: fu.overdue ? "overdue" : "", "data-follow-up": String(fu.id) },
      el("b", { text: label("fu", fu.kind) }), ` ${fu.note || ""} `,
      el("span", { class: "muted", text: dateTime(fu.due_at) }),
      fu.overdue ? el("span", { class: "badge late", text: t("day.overdue") }) : null,
      el("button", { type: "button", class: "small", text: t("agent.call"), onclick: () => act.dial(fu.customer_id) })));
  }
  if (!day.follow_ups.length) followUps.append(el("li", { class: "muted", text: t("common.none") }));

  renderDrafts(day.drafts, act);
}

export function renderDrafts(drafts, act) {
  const list = clear($("day-drafts"));
  show($("day-drafts-box"), drafts.length > 0);
  for (const d of drafts) {
    list.append(el("li", { "data-call-id": d.call_id },
      el("b", { text: d.caller || d.call_id }), " ", el("span", { class: "muted", text: d.notes || "" }), " ",
      el("span", { class: "muted", text: dateTime(d.kept_at) }), " ",
      el("button", { type: "button", class: "small", text: t("wrap.open_draft"), onclick: () => act.openDraft(d) })));
  }
}

export function tickDay() {
  for (const node of document.querySelectorAll("#day-waiting [data-since]")) {
    node.textContent = duration(nowSeconds() - Number(node.dataset.since));
  }
}
