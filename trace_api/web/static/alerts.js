/* Alerts of a ward health center, refreshed every few seconds (GET /v1/alerts). */
"use strict";
(async () => {
  const who = await TV.page("alerts");
  if (!who) return;
  const $ = id => document.getElementById(id);
  const POLL_MS = 3000;
  const DELIVERY = { pending: "chờ gửi", retrying: "đang thử lại", delivered: "đã gửi",
                     failed: "gửi thất bại", dead_lettered: "gửi thất bại" };
  const seen = new Set();
  let places = { venues: {}, wards: {} };
  try { places = await TV.places(); } catch (_) { /* labels only */ }

  const select = $("ward");
  if (who.role === "health_center") {
    select.appendChild(TV.el("option", { value: who.ward_code }, who.ward_name || who.ward_code));
    select.disabled = true;
  } else {
    select.appendChild(TV.el("option", { value: "" }, "Tất cả phường/xã"));
    for (const [code, name] of Object.entries(places.wards)) select.appendChild(TV.el("option", { value: code }, name));
  }
  const fromUrl = new URLSearchParams(location.search).get("ward");
  if (fromUrl && who.role !== "health_center") select.value = fromUrl;
  select.addEventListener("change", () => { seen.clear(); $("alerts").tBodies[0].replaceChildren(); poll(); });

  // One refresh loop: a ward change starts a new poll at once, which owns the timer from then on; an answer
  // still on its way for the ward shown before is dropped (never drawn over the new ward's list).
  const turn = TV.newest();
  let timer = null;
  async function poll() {
    clearTimeout(timer);
    const mine = turn();
    const ward = select.value;
    $("ward-title").textContent = ward ? "· " + (places.wards[ward] || ward) : "";
    try {
      const body = await TV.api("/v1/alerts" + (ward ? "?ward_code=" + encodeURIComponent(ward) : ""));
      if (!mine()) return;
      $("unavailable").hidden = true;
      $("error").hidden = true;
      const alerts = body.alerts || [];
      // A declaration alert has no venue; a label that cannot be fetched leaves the id shown, not the list.
      const fresh = alerts.filter(a => !seen.has(a.alert_id) && a.venue_id && !places.venues[a.venue_id]);
      if (fresh.length) {
        try { Object.assign(places.venues, (await TV.places(fresh.map(a => a.venue_id))).venues); } catch (_) { /* labels */ }
        if (!mine()) return;
      }
      render(alerts);
      $("status").textContent = "Cập nhật lúc " + TV.time(new Date().toISOString()) + " · tự động làm mới mỗi 3 giây";
    } catch (err) {
      if (!mine()) return;
      if (err.status === 404) { $("unavailable").hidden = false; } else { TV.showError($("error"), err); }
    } finally {
      if (mine()) timer = setTimeout(poll, POLL_MS);
    }
  }

  function render(alerts) {
    const tbody = $("alerts").tBodies[0];
    const firstRun = seen.size === 0 && tbody.rows.length === 0;
    tbody.replaceChildren();
    for (const a of alerts) {
      const isNew = !seen.has(a.alert_id) && !firstRun;
      seen.add(a.alert_id);
      const d = a.delivery || {};
      const declared = a.kind === "declaration";  // issue 15: a health declaration that needs a call
      tbody.appendChild(TV.el("tr", { class: "alert" + (isNew ? " new" : ""), "data-alert-id": a.alert_id,
                                      "data-kind": a.kind || "contact" },
        TV.el("td", {}, TV.dateTime(a.created_at)),
        TV.el("td", {}, declared ? TV.el("span", { class: "badge declaration" }, "Khai báo y tế")
                                 : TV.el("span", { class: "badge f" + a.generation }, "F" + a.generation)),
        TV.el("td", {}, a.person_id), TV.el("td", {}, declared ? "—" : a.case_id),
        TV.el("td", {}, places.wards[a.ward_code] || a.ward_code),
        TV.el("td", {}, (places.venues[a.venue_id] || {}).name || a.venue_id),
        TV.el("td", { class: "delivery " + (d.status || "") },
              d.status ? `${DELIVERY[d.status] || d.status} (${d.attempts || 0} lần)` : "—")));
    }
    $("alert-count").textContent = alerts.length;
    // Not delivered to the ward's webhook (none set, or down): still listed here; `truyvet alerts resend`.
    const undelivered = alerts.filter(a => (a.delivery || {}).status !== "delivered").length;
    $("undelivered-count").textContent = undelivered;
    $("undelivered-note").hidden = undelivered === 0;
  }

  poll();
})();
