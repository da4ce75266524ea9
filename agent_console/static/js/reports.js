// The Reports tab of the supervisor console: pick a report, a period, a queue or an agent; the figures come
// from GET /api/reports/<name> (the session token in Authorization), shown as a table and as charts drawn
// here as inline SVG (a few dozen bars and lines: no library needed, nothing fetched from elsewhere).
// Numbers and dates are written in the interface language; gaps and the open interval are notes and
// shaded bands, never zeros. Exports are the server's own CSV and Excel files.
import { $, clear, el, option } from "./dom.js";
import { currentLang, onLangChange, t } from "./i18n.js";

const API = "/api/reports";
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f5fbf", "#17803d", "#c2410c", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f", "#92400e"];
const COLORS = { answered: "#1f5fbf", abandoned: "#c2410c", handled: "#93c5fd", line: "#17803d",
                 available: "#86efac", ringing: "#93c5fd", talking: "#fb923c", on_hold: "#facc15",
                 wrap_up: "#c4b5fd", paused: "#cbd5e1" };
const CHARTS = {
  "inbound-summary": ["volume"], "call-loss": ["loss"], "waiting-time": ["wait", "abandon"],
  "call-duration": ["talk"], "agent-comparison": ["agents", "aht"], "agent-load": ["load"],
  "grade-movements": ["grades"],
};

let token = () => null;
let catalog = null;
let shown = null; // the last report received: redrawn when the language changes

export function mountReports(options) {
  token = options.token;
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.addEventListener("click", () => openTab(button.dataset.tab));
  }
  $("rp-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showReport();
  });
  $("rp-name").addEventListener("change", () => fillIntervals());
  $("rp-csv").addEventListener("click", () => download("csv"));
  $("rp-xlsx").addEventListener("click", () => download("xlsx"));
  onLangChange(() => {
    if (catalog) fillPickers();
    if (shown) paint(shown);
  });
  // Logged in or out (the monitor shown or hidden): what was read for the last user is dropped.
  new MutationObserver(() => {
    if ($("monitor").hidden) forget();
    else if (document.body.dataset.tab === "reports" && !catalog) loadCatalog();
  }).observe($("monitor"), { attributes: true, attributeFilter: ["hidden"] });
  openTab(sessionStorage.getItem("cti.sup.tab") || "live");
}

function forget() {
  catalog = null;
  shown = null;
  for (const id of ["rp-title", "rp-notes", "rp-charts"]) clear($(id));
  clear($("rp-table").tHead);
  clear($("rp-table").tBodies[0]);
  status("");
}

function openTab(tab) {
  document.body.dataset.tab = tab;
  sessionStorage.setItem("cti.sup.tab", tab);
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  if (tab === "reports" && !catalog && !$("monitor").hidden) loadCatalog();
}

// ------------------------------------------------------------------ talking to the server

async function call(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token() || ""}` }, cache: "no-store" });
  if (!response.ok) {
    const line = (await response.text()).trim();
    throw new Error(line || `HTTP ${response.status}`);
  }
  return response;
}

function status(text, kind = "") {
  const node = $("rp-status");
  node.textContent = text;
  node.dataset.kind = kind;
}

async function loadCatalog() {
  try {
    catalog = await (await call(API)).json();
  } catch (error) {
    status(error.message, "error");
    return;
  }
  $("rp-from").value = $("rp-from").value || catalog.today;
  $("rp-to").value = $("rp-to").value || catalog.today;
  fillPickers();
}

function fillPickers() {
  const keep = (id) => $(id).value;
  const [name, queue, agent] = [keep("rp-name"), keep("rp-queue"), keep("rp-agent")];
  const names = clear($("rp-name"));
  for (const r of catalog.reports) names.append(option(r.name, currentLang() === "zh" ? r.zh : r.en));
  names.value = name || "inbound-summary";
  const queues = clear($("rp-queue"));
  queues.append(option("", t("rp.all_queues")));
  for (const q of catalog.queues) queues.append(option(q, q));
  queues.value = queue;
  const agents = clear($("rp-agent"));
  agents.append(option("", t("rp.all_agents")));
  for (const a of catalog.agents) agents.append(option(a.id, `${a.name} (${a.id})`));
  agents.value = agent;
  fillIntervals();
}

function fillIntervals() {
  const select = $("rp-interval");
  const before = select.value;
  clear(select);
  for (const interval of catalog.intervals) select.append(option(interval, t(`rp.interval.${interval}`)));
  select.value = before || "hour";
}

function query(format) {
  const params = new URLSearchParams({ from: $("rp-from").value, to: $("rp-to").value,
                                       interval: $("rp-interval").value, format, lang: currentLang() });
  if ($("rp-queue").value) params.append("queue", $("rp-queue").value);
  if ($("rp-agent").value) params.append("agent", $("rp-agent").value);
  return `${API}/${encodeURIComponent($("rp-name").value)}?${params}`;
}

async function showReport() {
  if (!catalog) await loadCatalog();
  if (!catalog) return;
  status(t("rp.loading"));
  document.body.dataset.report = "loading";
  try {
    shown = await (await call(query("json"))).json();
  } catch (error) {
    status(error.message, "error");
    document.body.dataset.report = "failed";
    return;
  }
  status("");
  paint(shown);
  document.body.dataset.report = shown.report;
}

async function download(format) {
  status(t("rp.loading"));
  try {
    const response = await call(query(format));
    const disposition = response.headers.get("Content-Disposition") || "";
    const file = (/filename="([^"]+)"/.exec(disposition) || [])[1] || `report.${format}`;
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: file, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status(t("rp.saved", { file }), "ok");
  } catch (error) {
    status(error.message, "error");
  }
}

// ------------------------------------------------------------------ words, numbers and dates

function locale() {
  return currentLang() === "zh" ? "zh-CN" : "en-GB";
}

// A local time from the server ("2026-11-16T10:00+08:00") as a Date whose UTC fields are that wall clock:
// formatted with timeZone UTC it reads as the centre's time, whatever this browser's zone.
function wall(iso) {
  const [date, time = "00:00"] = iso.slice(0, 16).split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  return new Date(Date.UTC(y, m - 1, d, hh, mm));
}

const PERIOD_FORMATS = {
  "15m": { dateStyle: "medium", timeStyle: "short" }, hour: { dateStyle: "medium", timeStyle: "short" },
  day: { weekday: "short", year: "numeric", month: "short", day: "numeric" },
  month: { year: "numeric", month: "long" }, total: { dateStyle: "medium" },
};

export function periodText(iso, interval) {
  return new Intl.DateTimeFormat(locale(), { ...PERIOD_FORMATS[interval], timeZone: "UTC" }).format(wall(iso));
}

// The period asked for: whole days as dates (the last one included), otherwise from and to as times.
function periodOf(report) {
  const [from, to] = [wall(report.from), wall(report.to)];
  if (from.getUTCHours() || from.getUTCMinutes() || to.getUTCHours() || to.getUTCMinutes()) {
    return `${momentText(report.from)} – ${momentText(report.to)}`;
  }
  const days = new Intl.DateTimeFormat(locale(), { dateStyle: "full", timeZone: "UTC" });
  const last = new Date(to.getTime() - 86400000);
  return last.getTime() === from.getTime() ? days.format(from) : `${days.format(from)} – ${days.format(last)}`;
}

function momentText(iso) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })
    .format(wall(iso));
}

function shortPeriod(iso, interval) {
  const options = interval === "15m" || interval === "hour" ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
    : interval === "month" ? { year: "numeric", month: "short" } : { month: "numeric", day: "numeric" };
  return new Intl.DateTimeFormat(locale(), { ...options, timeZone: "UTC" }).format(wall(iso));
}

function number(value, digits = 1) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(value);
}

// A figure as the table shows it: counts with separators, percentages with one decimal, seconds as
// m:ss (h:mm:ss) from a minute up.
export function figure(value, unit) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value !== "number") return String(value);
  if (unit === "%") return `${number(value)}%`;
  if (unit === "s") {
    if (Math.abs(value) < 60) return t("rp.seconds", { n: number(value) });
    const s = Math.round(value);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }
  if (unit === "score") return number(value, 2);
  return number(value);
}

function columnTitle(column) {
  return currentLang() === "zh" ? column.zh : column.en;
}

function agentName(id) {
  const agent = catalog && catalog.agents.find((a) => a.id === id);
  return agent ? agent.name : id;
}

// ------------------------------------------------------------------ the page

function paint(report) {
  const lang = currentLang();
  $("rp-title").textContent = `${report.title[lang]} · ${periodOf(report)}`;
  paintNotes(report);
  const charts = clear($("rp-charts"));
  const kinds = report.rows.length ? CHARTS[report.report] || [] : [];
  charts.dataset.count = String(kinds.length);
  for (const kind of kinds) charts.append(chartCard(kind, report));
  paintTable(report);
}

function paintNotes(report) {
  const list = clear($("rp-notes"));
  for (const gap of report.gaps) {
    list.append(el("li", { class: "rp-note rp-gap",
      text: t("rp.gap", { from: momentText(gap.from), to: momentText(gap.to), minutes: gap.minutes }) }));
  }
  if (report.open) {
    const key = report.open.included ? "rp.open_included" : "rp.open_pending";
    list.append(el("li", { class: "rp-note rp-open", text: t(key, { from: momentText(report.open.from) }) }));
  }
  for (const note of report.notes) {
    const key = note.startsWith("computed from the call history") ? "rp.note.fcr"
      : note.startsWith("no grading run") ? "rp.note.no_grading"
        : note.startsWith("from the journal's dialer facts") ? "rp.note.outbound" : null;
    list.append(el("li", { class: "rp-note", text: key ? t(key) : note }));
  }
}

function paintTable(report) {
  const table = $("rp-table");
  const head = clear(table.tHead);
  const numeric = (c) => c.key !== "period" && (Boolean(c.unit) || report.rows.some((r) => typeof r[c.key] === "number"));
  table.classList.toggle("narrow", report.columns.length <= 4);
  table.classList.toggle("wide", report.columns.length > 14); // the distributions: every bucket a column
  head.append(el("tr", {}, report.columns.map((c) => el("th", { class: numeric(c) ? "c-num" : "c-text",
                                                                "data-key": c.key, text: columnTitle(c) }))));
  const body = clear(table.tBodies[0]);
  if (!report.rows.length) {
    body.append(el("tr", { class: "rp-empty" }, el("td", { colspan: report.columns.length, text: t("rp.empty") })));
  }
  for (const row of report.rows) {
    const tr = el("tr", { class: "rp-row" });
    for (const c of report.columns) {
      const value = row[c.key];
      let text = figure(value, c.unit);
      if (c.key === "period" && typeof value === "string") text = periodText(value, report.interval);
      else if (c.key === "agent" && value) text = `${agentName(value)} (${value})`;
      else if ((c.key === "from" || c.key === "to") && value === "new") text = t("rp.grade.new");
      const kind = typeof value === "number" || (value === null && c.unit) ? "num" : "text";
      tr.append(el("td", { class: `c-${kind}`, "data-key": c.key,
                           "data-value": value === null || value === undefined ? "" : String(value), text }));
    }
    body.append(tr);
  }
  status(t(report.rows.length === 1 ? "rp.rows_one" : "rp.rows", { n: report.rows.length }));
}

// ------------------------------------------------------------------ charts

function chartCard(kind, report) {
  const card = el("figure", { class: "rp-chart", "data-chart": kind });
  card.append(el("figcaption", { text: t(`rp.chart.${kind}`) }));
  const width = Math.max(420, ($("rp-charts").clientWidth || 1200) / (CHARTS[report.report].length > 1 ? 2 : 1) - 30);
  const build = { volume: volumeChart, loss: lossChart, wait: waitChart, abandon: abandonChart, talk: talkChart,
                  agents: agentsChart, aht: ahtChart, load: loadChart, grades: gradesChart }[kind];
  card.append(build(report, width));
  return card;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An axis from 0 to `value` or a little more, in round steps: counts by 1, 2, 5, 10...; seconds by minutes
// and hours. Returns [top, step].
function axis(value, unit = "") {
  if (unit === "s") {
    const steps = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400];
    const step = steps.find((s) => value / s <= 6) || 86400 * Math.ceil(value / 86400 / 6);
    return [Math.max(1, Math.ceil(value / step)) * step, step];
  }
  const raw = Math.max(value, 1) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw));
  return [Math.max(1, Math.ceil(value / step)) * step, step];
}

function legend(items) {
  return el("div", { class: "rp-legend" }, items.map(([name, color, line]) => {
    const swatch = el("i", { class: line ? "rp-swatch line" : "rp-swatch" });
    swatch.style.setProperty("--c", color); // CSSOM, not a style attribute: the page's CSP allows it
    return el("span", { class: "rp-key" }, swatch, name);
  }));
}

function sum(rows, key) {
  return rows.reduce((total, row) => total + (typeof row[key] === "number" ? row[key] : 0), 0);
}

// Periods along the x axis: every step between the first and the last for 15 minutes and hours (an empty
// interval is a real zero unless a gap covers it), the periods present otherwise.
function periods(report) {
  const present = [...new Set(report.rows.map((r) => r.period))].sort((a, b) => wall(a) - wall(b));
  const step = { "15m": 15, hour: 60 }[report.interval];
  if (!step || present.length < 2) return present;
  const suffix = present[0].slice(16);
  const out = [];
  for (let at = wall(present[0]).getTime(); at <= wall(present[present.length - 1]).getTime(); at += step * 60000) {
    out.push(new Date(at).toISOString().slice(0, 16) + suffix);
  }
  return out;
}

// Which x slots a gap or the open interval covers (band shading).
function bands(report, slots) {
  const step = { "15m": 15, hour: 60, day: 1440 }[report.interval];
  if (!step) return [];
  const out = [];
  const mark = (from, to, kind) => {
    const a = wall(from).getTime();
    const b = Math.max(wall(to).getTime(), a + 1); // the open interval: the slot it starts in
    slots.forEach((slot, i) => {
      const start = wall(slot).getTime();
      if (start < b && start + step * 60000 > a) out.push({ i, kind });
    });
  };
  for (const gap of report.gaps) mark(gap.from, gap.to, "gap");
  if (report.open) mark(report.open.from, report.open.from, "open");
  return out;
}

// Bars per x slot (stacked series), an optional percentage line on the right axis, shaded bands.
function columnChart({ width, height = 280, labels, series, line, marks = [], yTitle = "" }) {
  const pad = { left: 48, right: line ? 52 : 16, top: 14, bottom: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] || 0), 0));
  const [top, tick] = axis(Math.max(...totals, 0));
  const slot = plotW / Math.max(1, labels.length);
  const barW = Math.max(2, Math.min(42, slot * 0.7));
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const root = svg("svg", { class: "rp-svg", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  for (const band of marks) {
    root.append(svg("rect", { class: `rp-band rp-band-${band.kind}`, x: pad.left + band.i * slot, y: pad.top,
                              width: slot, height: plotH }));
  }
  const firstOfKind = new Set();
  for (const band of marks) {
    if (firstOfKind.has(band.kind)) continue;
    firstOfKind.add(band.kind);
    root.append(svg("text", { class: "rp-band-label", x: pad.left + (band.i + 0.5) * slot, y: pad.top - 3,
                              "text-anchor": "middle" }, t(`rp.band.${band.kind}`)));
  }
  for (let v = 0; v <= top; v += tick) {
    root.append(svg("line", { class: "rp-grid", x1: pad.left, x2: pad.left + plotW, y1: y(v), y2: y(v) }),
                svg("text", { class: "rp-tick", x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, number(v)));
  }
  if (yTitle) root.append(svg("text", { class: "rp-axis-title", x: 4, y: pad.top - 2 }, yTitle));
  const every = Math.ceil(labels.length / Math.max(1, Math.floor(plotW / 64)));
  labels.forEach((label, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let base = 0;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (v > 0) {
        root.append(svg("rect", { class: "rp-bar", x, y: y(base + v), width: barW, height: y(base) - y(base + v),
                                  fill: s.color, "data-series": s.key, "data-value": v },
                        svg("title", {}, `${label} · ${s.name}: ${number(v)}`)));
      }
      base += v;
    }
    if (i % every === 0) {
      root.append(svg("text", { class: "rp-tick", x: pad.left + (i + 0.5) * slot, y: pad.top + plotH + 16,
                                "text-anchor": "middle" }, label));
    }
  });
  if (line) {
    const yl = (v) => pad.top + plotH - (v / 100) * plotH;
    for (let k = 0; k <= 4; k++) {
      root.append(svg("text", { class: "rp-tick", x: pad.left + plotW + 6, y: yl(25 * k) + 4 }, `${25 * k}%`));
    }
    for (const l of line) {
      let d = "";
      l.values.forEach((v, i) => {
        if (v === null || v === undefined) return; // no calls counted: no point, and the line breaks
        const cmd = d && l.values[i - 1] !== null && l.values[i - 1] !== undefined ? "L" : "M";
        d += `${cmd}${(pad.left + (i + 0.5) * slot).toFixed(1)},${yl(v).toFixed(1)} `;
        root.append(svg("circle", { class: "rp-dot", cx: pad.left + (i + 0.5) * slot, cy: yl(v), r: 3,
                                    fill: l.color, "data-series": l.key, "data-value": v },
                        svg("title", {}, `${labels[i]} · ${l.name}: ${number(v)}%`)));
      });
      root.append(svg("path", { class: "rp-line", d: d.trim(), stroke: l.color, "data-series": l.key }));
    }
  }
  root.append(svg("line", { class: "rp-axis", x1: pad.left, x2: pad.left + plotW, y1: y(0), y2: y(0) }));
  return root;
}

function queuesOf(report) {
  return [...new Set(report.rows.map((r) => r.queue))];
}

// Bars per interval stacked by queue; the rate as a line per queue, or (`overall`: a ratio of two counts,
// which add up) one line for all queues together.
function perQueueChart(report, width, countKey, rateKey, rateName, overall = null) {
  const slots = periods(report);
  const queues = queuesOf(report);
  const value = (queue, slot, key) => {
    const row = report.rows.find((r) => r.queue === queue && r.period === slot);
    return row ? row[key] : null;
  };
  const colors = new Map(queues.map((q, i) => [q, PALETTE[i % PALETTE.length]]));
  const series = queues.map((q) => ({ key: q, name: q, color: colors.get(q),
                                      values: slots.map((s) => value(q, s, countKey) || 0) }));
  let line;
  if (overall) {
    const ratio = (slot) => {
      const rows = report.rows.filter((r) => r.period === slot);
      const whole = sum(rows, overall[1]);
      return whole ? Math.round((1000 * sum(rows, overall[0])) / whole) / 10 : null;
    };
    line = [{ key: rateKey, name: rateName, color: "#111827", values: slots.map(ratio) }];
  } else {
    line = queues.map((q) => ({ key: `${q}:${rateKey}`, name: `${q} ${rateName}`, color: colors.get(q),
                                values: slots.map((s) => value(q, s, rateKey)) }));
  }
  const chart = columnChart({ width, labels: slots.map((s) => shortPeriod(s, report.interval)), series, line,
                              marks: bands(report, slots) });
  return el("div", {}, chart, legend([...queues.map((q) => [q, colors.get(q)]),
                                      [rateName, overall ? "#111827" : "#475467", true]]));
}

function volumeChart(report, width) {
  return perQueueChart(report, width, "offered", "service_level", t("rp.series.sl"));
}

function lossChart(report, width) {
  return perQueueChart(report, width, "lost_calls", "loss_rate", t("rp.series.loss_rate_all"),
                       ["lost_calls", "offered"]);
}

function bucketLabels(bounds) {
  const labels = bounds.map((b, i) => t("rp.seconds", { n: `${i ? bounds[i - 1] : 0}–${b}` }));
  labels.push(t("rp.over", { n: bounds[bounds.length - 1] }));
  return labels;
}

function waitChart(report, width) {
  const labels = bucketLabels(report.wait_buckets);
  const answered = labels.map((_, i) => sum(report.rows, `aw_${i}`));
  const abandoned = labels.map((_, i) => sum(report.rows, `ab_${i}`));
  return el("div", {},
    columnChart({ width, labels, series: [
      { key: "answered", name: t("rp.series.answered"), color: COLORS.answered, values: answered },
      { key: "abandoned", name: t("rp.series.abandoned"), color: COLORS.abandoned, values: abandoned }] }),
    legend([[t("rp.series.answered"), COLORS.answered], [t("rp.series.abandoned"), COLORS.abandoned]]));
}

function abandonChart(report, width) {
  const labels = bucketLabels(report.wait_buckets);
  const abandoned = labels.map((_, i) => sum(report.rows, `ab_${i}`));
  const total = abandoned.reduce((a, b) => a + b, 0);
  let running = 0;
  const cumulative = abandoned.map((v) => {
    running += v;
    return total ? Math.round((1000 * running) / total) / 10 : null;
  });
  return el("div", {},
    columnChart({ width, labels, series: [
      { key: "abandoned", name: t("rp.series.abandoned"), color: COLORS.abandoned, values: abandoned }],
    line: [{ key: "cumulative", name: t("rp.series.cumulative"), color: COLORS.line, values: cumulative }] }),
    legend([[t("rp.series.abandoned"), COLORS.abandoned], [t("rp.series.cumulative"), COLORS.line, true]]));
}

function talkChart(report, width) {
  const labels = bucketLabels(report.talk_buckets);
  const handled = labels.map((_, i) => sum(report.rows, `tk_${i}`));
  return el("div", {},
    columnChart({ width, labels, series: [
      { key: "handled", name: t("rp.series.handled"), color: COLORS.answered, values: handled }] }),
    legend([[t("rp.series.handled"), COLORS.answered]]));
}

function byAgent(report, keys) {
  const out = new Map();
  for (const row of report.rows) {
    const mine = out.get(row.agent) || Object.fromEntries(keys.map((k) => [k, 0]));
    for (const k of keys) mine[k] += typeof row[k] === "number" ? row[k] : 0;
    out.set(row.agent, mine);
  }
  return out;
}

// One horizontal bar (stacked series) or a pair of bars (grouped) per agent.
function agentBars(width, agents, series, { grouped = false, unit = "" } = {}) {
  const rowH = grouped ? 34 : 26;
  const pad = { left: 170, right: 60, top: 8, bottom: 26 };
  const height = pad.top + pad.bottom + agents.length * rowH;
  const plotW = width - pad.left - pad.right;
  const totals = agents.map(([, v]) => grouped ? Math.max(...series.map((s) => v[s.key])) : series.reduce((a, s) => a + v[s.key], 0));
  const [top, tick] = axis(Math.max(...totals, 0), unit);
  const x = (v) => pad.left + (v / top) * plotW;
  const root = svg("svg", { class: "rp-svg", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  for (let v = 0; v <= top; v += tick) {
    root.append(svg("line", { class: "rp-grid", x1: x(v), x2: x(v), y1: pad.top, y2: height - pad.bottom }),
                svg("text", { class: "rp-tick", x: x(v), y: height - pad.bottom + 16, "text-anchor": "middle" },
                    unit === "s" ? hours(v) : number(v)));
  }
  agents.forEach(([agent, values], i) => {
    const y0 = pad.top + i * rowH;
    root.append(svg("text", { class: "rp-label", x: pad.left - 8, y: y0 + rowH / 2 + 4, "text-anchor": "end" },
                    agentName(agent)));
    let base = 0;
    series.forEach((s, k) => {
      const v = values[s.key];
      const h = grouped ? (rowH - 8) / series.length : rowH - 8;
      const y = grouped ? y0 + 4 + k * h : y0 + 4;
      const from = grouped ? 0 : base;
      if (v > 0) {
        root.append(svg("rect", { class: "rp-bar", x: x(from), y, width: x(from + v) - x(from), height: h - 1,
                                  fill: s.color, "data-series": s.key, "data-value": v, "data-agent": agent },
                        svg("title", {}, `${agentName(agent)} · ${s.name}: ${figure(v, unit)}`)));
      }
      if (grouped) {
        root.append(svg("text", { class: "rp-value", x: x(v) + 4, y: y + h - 3 }, figure(v, unit)));
      }
      base += v;
    });
  });
  return root;
}

function hours(seconds) {
  if (!seconds) return "0";
  return seconds % 3600 ? figure(seconds, "s") : t("rp.hours", { n: seconds / 3600 });
}

function agentsChart(report, width) {
  const series = [{ key: "answered", name: t("rp.series.answered"), color: COLORS.answered }];
  const agents = [...byAgent(report, ["answered"])].sort((a, b) => b[1].answered - a[1].answered);
  return el("div", {}, agentBars(width, agents, series, { grouped: true }),
            legend(series.map((s) => [s.name, s.color])));
}

// AHT over the period: each row's AHT weighted by its handled calls (the total handle time over them all).
function ahtChart(report, width) {
  const totals = new Map();
  for (const row of report.rows) {
    const mine = totals.get(row.agent) || { time: 0, handled: 0 };
    if (typeof row.aht === "number") {
      mine.time += row.aht * row.handled;
      mine.handled += row.handled;
    }
    totals.set(row.agent, mine);
  }
  const agents = [...totals].map(([agent, v]) => [agent, { aht: v.handled ? Math.round((10 * v.time) / v.handled) / 10 : 0 }])
    .sort((a, b) => a[1].aht - b[1].aht);
  const series = [{ key: "aht", name: t("rp.series.aht"), color: COLORS.line }];
  return el("div", {}, agentBars(width, agents, series, { grouped: true, unit: "s" }),
            legend(series.map((s) => [s.name, s.color])));
}

function loadChart(report, width) {
  const states = ["talking", "on_hold", "wrap_up", "ringing", "available", "paused"];
  const series = states.map((s) => ({ key: s, name: t(`rp.state.${s}`), color: COLORS[s] }));
  const agents = [...byAgent(report, states)];
  return el("div", {}, agentBars(width, agents, series, { unit: "s" }), legend(series.map((s) => [s.name, s.color])));
}

function gradesChart(report, width) {
  const from = ["new", ...new Set(report.rows.map((r) => r.from).filter((g) => g !== "new"))].sort(gradeOrder);
  const to = [...new Set(report.rows.map((r) => r.to))].sort(gradeOrder);
  const count = (a, b) => (report.rows.find((r) => r.from === a && r.to === b) || {}).customers || 0;
  const top = Math.max(1, ...report.rows.map((r) => r.customers));
  const cell = 56;
  const pad = { left: 110, top: 40 };
  const w = Math.min(width, pad.left + to.length * cell + 20);
  const height = pad.top + from.length * cell + 10;
  const root = svg("svg", { class: "rp-svg rp-matrix", viewBox: `0 0 ${w} ${height}`, width: w, height, role: "img" });
  root.append(svg("text", { class: "rp-axis-title", x: pad.left + (to.length * cell) / 2, y: 14,
                            "text-anchor": "middle" }, `${t("rp.grade.to")} →`));
  to.forEach((g, j) => root.append(svg("text", { class: "rp-label", x: pad.left + j * cell + cell / 2, y: pad.top - 8,
                                                 "text-anchor": "middle" }, g)));
  from.forEach((a, i) => {
    const y = pad.top + i * cell;
    root.append(svg("text", { class: "rp-label", x: pad.left - 10, y: y + cell / 2 + 4, "text-anchor": "end" },
                    `${a === "new" ? t("rp.grade.new") : a} →`));
    to.forEach((b, j) => {
      const n = count(a, b);
      const shade = n ? 0.15 + (0.75 * n) / top : 0;
      root.append(svg("rect", { class: "rp-cell", x: pad.left + j * cell + 2, y: y + 2, width: cell - 4,
                                height: cell - 4, fill: n ? `rgba(31,95,191,${shade.toFixed(2)})` : "#f2f4f7",
                                "data-from": a, "data-to": b, "data-value": n }),
                  svg("text", { class: n / top > 0.5 ? "rp-cell-text dark" : "rp-cell-text",
                                x: pad.left + j * cell + cell / 2, y: y + cell / 2 + 5, "text-anchor": "middle" },
                      a === b ? "·" : number(n)));
    });
  });
  return root;
}

function gradeOrder(a, b) {
  const rank = (g) => (g === "new" ? -1 : g.charCodeAt(0));
  return rank(a) - rank(b);
}
