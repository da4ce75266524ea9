// The login form and the log-out button, the same on every console page.
import { $ } from "./dom.js";
import { t } from "./i18n.js";

export function bindLogin(conn, errorText = (reply) => t(`err.${reply.code}`)) {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const reply = await conn.login($("login-user").value.trim(), $("login-pass").value);
      if (reply.type === "error") $("login-error").textContent = errorText(reply);
      $("login-pass").value = "";
    } catch {
      $("login-error").textContent = t("err.offline");
    }
  });
  $("logout").addEventListener("click", () => conn.logout());
}
