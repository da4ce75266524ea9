// Durations and times. Server times are unix seconds; `skew` corrects this browser's clock.
import { currentLang } from "./i18n.js";

let skew = 0;

export function setServerTime(serverSeconds) {
  skew = serverSeconds - Date.now() / 1000;
}

export function nowSeconds() {
  return Date.now() / 1000 + skew;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

export function since(unixSeconds) {
  return unixSeconds ? duration(nowSeconds() - unixSeconds) : "–";
}

// Dates in the UI's language (not the browser's): 2026年11月28日 10:05 or 28 Nov 2026, 10:05.
export function dateTime(iso) {
  if (iso === null || iso === undefined || iso === "") return "–";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const locale = currentLang() === "zh" ? "zh-CN" : "en-GB";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(d);
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)}%`;
}
