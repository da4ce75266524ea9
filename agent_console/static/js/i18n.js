// Chinese and English. Static text carries data-i18n (and data-i18n-placeholder); dynamic
// text calls t(). Codes from the server (states, flags, dispositions) are looked up under a
// prefix and shown raw when the dictionary does not know them.
import en from "../i18n/en.js";
import operations from "../i18n/operations.js";
import outbound from "../i18n/outbound.js";
import phone from "../i18n/phone.js";
import zh from "../i18n/zh.js";
import workdayEn from "../i18n/workday.en.js";
import workdayZh from "../i18n/workday.zh.js";

const DICTS = { en: { ...operations.en, ...en, ...workdayEn, ...phone.en, ...outbound.en },
                zh: { ...operations.zh, ...zh, ...workdayZh, ...phone.zh, ...outbound.zh } };
const listeners = [];
let lang = localStorage.getItem("cti.lang") || (navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en");

export function currentLang() {
  return lang;
}

export function t(key, vars = {}) {
  let text = DICTS[lang][key] ?? DICTS.en[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

export function label(prefix, code) {
  if (code === null || code === undefined || code === "") return "–";
  const key = `${prefix}.${code}`;
  return DICTS[lang][key] ?? DICTS.en[key] ?? String(code);
}

export function apply(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
}

export function setLang(next) {
  if (!DICTS[next]) return;
  lang = next;
  localStorage.setItem("cti.lang", next);
  apply();
  for (const fn of listeners) fn();
}

export function onLangChange(fn) {
  listeners.push(fn);
}

export function bindToggle(button) {
  const paint = () => {
    button.textContent = lang === "zh" ? "English" : "中文";
  };
  button.addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh"));
  onLangChange(paint);
  paint();
}
