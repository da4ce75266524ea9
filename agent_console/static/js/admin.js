// Administration: users, agents' skills and queues, pause reasons, business hours, and the audit log.
// Every change is one command; the server checks it with the loaders it starts with, writes the file whole
// and puts it in force, or refuses it in one line (shown here as is) with nothing written.
import { Connection } from "./connection.js";
import { $, clear, el, option, show } from "./dom.js";
import { apply, bindToggle, currentLang, label, onLangChange, t } from "./i18n.js";
import { bindLogin } from "./login.js";

const ROLES = ["agent", "supervisor", "admin"];
const AUDIT_ACTIONS = ["", "admin:user_set", "admin:user_delete", "admin:agent_set", "admin:pause_reasons_set",
  "admin:calendar_set", "wrapup", "view", "search", "create", "update", "flag", "ticket", "follow_up", "survey",
  "purchase", "grade", "import", "export"];
const model = { user: null, overview: null, audit: [] };

const conn = new Connection({
  storageKey: "cti.admin.session",
  onMessage: () => {}, // the monitor stream: this page does not show it
  onStatus: (status) => {
    const node = $("conn");
    node.dataset.status = status;
    node.textContent = t(`conn.${status}`);
  },
  onAuth: (msg) => {
    if (msg.user.role !== "admin") {
      $("login-error").textContent = t("admin.only");
      conn.logout();
      return;
    }
    model.user = msg.user;
    $("who").textContent = msg.user.display_name;
    render();
    load();
  },
  onLoggedOut: () => {
    model.user = null;
    model.overview = null;
    render();
  },
});

function render() {
  const loggedIn = Boolean(model.user);
  show($("login-panel"), !loggedIn);
  show($("admin-main"), loggedIn);
  show($("logout"), loggedIn);
  if (!loggedIn) $("who").textContent = "";
}

function status(text, kind) {
  const node = $("admin-status");
  node.textContent = text;
  node.dataset.kind = kind;
}

async function send(type, fields) {
  try {
    const reply = await conn.request(type, fields);
    if (reply.type === "error") {
      const unserved = reply.reason === "queue_unserved" && /^queue (\S+):/.exec(reply.message);
      if (unserved) {
        status(t("err.queue_unserved", { queue: label("queue", unserved[1]) }), "error");
        return null;
      }
      const known = t(`err.${reply.reason || reply.code}`);
      status(known.startsWith("err.") ? reply.message : `${known}: ${reply.message}`, "error");
      return null;
    }
    return reply;
  } catch {
    status(t("err.offline"), "error");
    return null;
  }
}

async function change(type, fields) {
  const reply = await send(type, fields);
  if (reply) {
    status(t("admin.saved"), "ok");
    await load();
  }
  return reply;
}

async function load() {
  const reply = await send("admin_overview", {});
  if (!reply) return;
  model.overview = reply.data;
  paint();
  await loadAudit();
}

function paint() {
  const o = model.overview;
  if (!o) return;
  show($("users-ro"), !o.editable.accounts);
  show($("queues-ro"), !o.editable.queues);
  paintUsers(o);
  paintAgents(o);
  $("pause-reasons").value = o.pause_reasons.join("\n");
  $("pause-labels").textContent = o.pause_reasons.map((r) => `${r} = ${label("reason", r)}`).join(" · ");
  paintCalendars(o);
}

// ------------------------------------------------------------------ users

function paintUsers(o) {
  const body = clear($("user-list"));
  for (const u of o.users) {
    const edit = el("button", { type: "button", class: "small", text: t("admin.edit"),
      onclick: () => fillUser(u) });
    const remove = el("button", { type: "button", class: "small danger", text: t("admin.delete"),
      disabled: u.username === model.user.username || !o.editable.accounts,
      onclick: () => {
        if (window.confirm(t("admin.confirm_delete", { user: u.username }))) {
          change("admin_user_delete", { username: u.username });
        }
      } });
    body.append(el("tr", { "data-key": u.username },
      el("td", { text: u.username }), el("td", { class: "c-role", text: label("role", u.role) }),
      el("td", { text: u.display_name || "" }), el("td", { text: u.agent_id || "–" }),
      el("td", { text: u.extension || "–" }), el("td", { text: u.language === "en" ? "English" : "中文" }),
      el("td", { class: "c-actions" }, edit, remove)));
  }
  const role = $("u-role");
  const chosen = role.value || "agent";
  clear(role).append(...ROLES.map((r) => option(r, label("role", r))));
  role.value = chosen;
}

function fillUser(u) {
  $("u-name").value = u.username;
  $("u-role").value = u.role;
  $("u-display").value = u.display_name || "";
  $("u-agent").value = u.agent_id || "";
  $("u-ext").value = u.extension || "";
  $("u-lang").value = u.language || "zh";
  $("u-pass").value = "";
}

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = { username: $("u-name").value.trim(), role: $("u-role").value,
    display_name: $("u-display").value.trim(), language: $("u-lang").value };
  if ($("u-agent").value.trim()) fields.agent_id = $("u-agent").value.trim();
  fields.extension = $("u-ext").value.trim();
  if ($("u-pass").value) fields.password = $("u-pass").value;
  if (await change("admin_user_set", fields)) {
    $("user-form").reset();
  }
  $("u-pass").value = "";
});

// ------------------------------------------------------------------ agents

function paintAgents(o) {
  const body = clear($("agent-list"));
  for (const a of o.agents) {
    const levels = {};
    const skills = el("div", { class: "skills" }, o.skills.map((s) => {
      levels[s] = el("input", { type: "number", min: "1", max: "10", value: a.skills[s] ?? "",
        "data-skill": s, "aria-label": s });
      return el("label", {}, label("skill", s), levels[s]);
    }));
    const picks = {};
    const queues = el("div", { class: "queues-pick" }, o.queues.map((q) => {
      picks[q.name] = el("input", { type: "checkbox", checked: a.queues.includes(q.name), "data-queue": q.name });
      return el("label", {}, picks[q.name], label("queue", q.name));
    }));
    const save = el("button", { type: "button", class: "small primary", text: t("admin.save"),
      disabled: !o.editable.queues,
      onclick: () => change("admin_agent_set", {
        agent_id: a.id,
        skills: Object.entries(levels).filter(([, input]) => input.value !== "")
          .map(([skill, input]) => ({ skill, level: Number(input.value) })),
        queues: Object.entries(picks).filter(([, box]) => box.checked).map(([q]) => q),
      }) });
    body.append(el("tr", { "data-key": a.id }, el("td", { text: `${a.name} (${a.id})` }),
      el("td", {}, skills), el("td", {}, queues), el("td", { class: "c-actions" }, save)));
  }
}

// ------------------------------------------------------------------ pause reasons

$("pause-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const reasons = $("pause-reasons").value.split(/\s+/).map((r) => r.trim()).filter(Boolean);
  change("admin_pause_reasons_set", { reasons });
});

// ------------------------------------------------------------------ calendars

function paintCalendars(o) {
  const list = clear($("calendar-list"));
  for (const cal of o.calendars) {
    const tz = el("input", { value: cal.timezone, size: "18" });
    const hours = el("textarea", { rows: "4" });
    hours.value = cal.hours.map((h) => `${h.days} ${h.ranges.join(" ")}`).join("\n");
    const holidays = el("textarea", { rows: "4" });
    holidays.value = cal.holidays.join("\n");
    const save = el("button", { type: "button", class: "primary", text: t("admin.save"), onclick: () => {
      const rows = hours.value.split("\n").map((line) => line.trim().split(/\s+/)).filter((p) => p[0]);
      change("admin_calendar_set", { flow: cal.flow, calendar: cal.name, timezone: tz.value.trim(),
        hours: rows.map(([days, ...ranges]) => ({ days, ranges })),
        holidays: holidays.value.split(/\s+/).filter(Boolean) });
    } });
    list.append(el("div", { class: "calendar", "data-key": `${cal.flow}/${cal.name}` },
      el("h3", { text: `${cal.flow} · ${cal.name}` }),
      el("div", { class: "forms" },
        el("label", {}, el("span", { text: t("admin.timezone") }), tz),
        el("label", {}, el("span", { text: t("admin.hours") }), hours),
        el("label", {}, el("span", { text: t("admin.holidays") }), holidays), save)));
  }
}

// ------------------------------------------------------------------ audit log

function paintActions() {
  const select = $("a-action");
  const chosen = select.value;
  clear(select).append(...AUDIT_ACTIONS.map((a) => option(a, a ? label("action", a) : "—")));
  select.value = chosen;
}

async function loadAudit() {
  const fields = { limit: 200 };
  if ($("a-actor").value.trim()) fields.actor = $("a-actor").value.trim();
  if ($("a-action").value) fields.action = $("a-action").value;
  // Dates are the browser's days: from its midnight to the next one.
  if ($("a-since").value) fields.since = new Date(`${$("a-since").value}T00:00`).toISOString();
  if ($("a-until").value) {
    const end = new Date(`${$("a-until").value}T00:00`);
    end.setDate(end.getDate() + 1);
    fields.until = end.toISOString();
  }
  const reply = await send("admin_audit", fields);
  if (!reply) return;
  model.audit = reply.data.entries;
  paintAudit();
}

function when(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(currentLang() === "zh" ? "zh-CN" : "en-GB");
}

function paintAudit() {
  const body = clear($("audit-list"));
  if (!model.audit.length) {
    body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: t("admin.no_entries") })));
  }
  for (const e of model.audit) {
    body.append(el("tr", { "data-key": String(e.id), "data-action": e.action },
      el("td", { text: when(e.at) }), el("td", { text: e.actor }), el("td", { text: label("role", e.role) }),
      el("td", { class: "c-action", text: label("action", e.action) }),
      el("td", { class: "c-detail", text: e.detail })));
  }
}

$("audit-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadAudit();
});

// ------------------------------------------------------------------ login

bindLogin(conn);

bindToggle($("lang"));
onLangChange(() => {
  const s = $("conn").dataset.status;
  if (s) $("conn").textContent = t(`conn.${s}`);
  paintActions();
  paint();
  paintAudit();
});
apply();
paintActions();
render();
conn.connect();
