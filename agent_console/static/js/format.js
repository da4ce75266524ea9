// Durations and times. Server times are unix seconds; `skew` corrects this browser's clock.
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

export function dateTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)}%`;
}
