/* Login: a token pasted (or given in the URL fragment #token=..., which never reaches a server log). */
"use strict";
(async () => {
  const form = document.getElementById("login"), error = document.getElementById("error");
  const HOME = { health_center: "alerts", viewer: "coverage", registrar: "compliance" };

  async function enter(t) {
    TV.setToken(t.trim());
    sessionStorage.removeItem("truyvet.token.me");
    try {
      const who = await TV.me();
      location.href = "/dashboard/" + (HOME[who.role] || "case");
    } catch (err) {
      sessionStorage.clear();
      TV.showError(error, err.status === 401 ? new Error("Mã truy cập không hợp lệ hoặc đã bị thu hồi.") : err);
    }
  }

  const m = location.hash.match(/token=([^&]+)/);
  if (m) { history.replaceState(null, "", location.pathname); await enter(decodeURIComponent(m[1])); }
  form.addEventListener("submit", ev => { ev.preventDefault(); enter(document.getElementById("token").value); });
})();
