/* Follow-up list of a ward health station (GET/PUT /v1/follow-ups): filter, change status inline, register
   a contact who tested positive as a new case, counts per status with a chart. */
"use strict";
(async () => {
  const who = await TV.page("followups");
  if (!who) return;
  const $ = id => document.getElementById(id);
  const STATUS = { new: "Mới", called: "Đã gọi", unreachable: "Không liên lạc được", quarantined: "Đã cách ly",
                   tested_negative: "Xét nghiệm âm tính", tested_positive: "Xét nghiệm dương tính",
                   released: "Kết thúc theo dõi" };
  const COLORS = { new: "#1565c0", called: "#2e7d32", unreachable: "#607d8b", quarantined: "#ef6c00",
                   tested_negative: "#66bb6a", tested_positive: "#c62828", released: "#90a4ae" };
  for (const [k, v] of Object.entries(STATUS)) $("status").appendChild(TV.el("option", { value: k }, v));

  let wards = {};
  try { wards = (await TV.places()).wards; } catch (_) { /* labels */ }
  const ward = $("ward");
  if (who.role === "health_center") {
    ward.appendChild(TV.el("option", { value: who.ward_code }, who.ward_name || who.ward_code));
    ward.disabled = true;
  } else {
    ward.appendChild(TV.el("option", { value: "" }, "Tất cả phường/xã"));
    for (const [code, name] of Object.entries(wards)) ward.appendChild(TV.el("option", { value: code }, name));
  }
  const knownCases = new Set();

  function query(extra = {}) {
    const q = new URLSearchParams();
    for (const [k, id] of [["ward_code", "ward"], ["case_id", "case"], ["status", "status"], ["generation", "generation"]]) {
      if ($(id).value && !(k === "ward_code" && who.role === "health_center")) q.set(k, $(id).value);
    }
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q.toString();
  }

  const turn = TV.newest();  // filters changed quickly: only the answer to the latest request is shown
  async function load() {
    const mine = turn();
    try {
      const body = await TV.api("/v1/follow-ups?" + query());
      if (!mine()) return;
      $("error").hidden = true;
      render(body);
      $("updated").textContent = "Cập nhật lúc " + TV.time(new Date().toISOString());
    } catch (err) { TV.showError($("error"), err); }
  }

  function render(body) {
    const rows = body.follow_ups || [];
    for (const f of rows) {
      if (!knownCases.has(f.case_id)) {
        knownCases.add(f.case_id);
        $("case").appendChild(TV.el("option", { value: f.case_id }, f.case_id));
      }
    }
    const counts = body.counts || {};
    $("counts").replaceChildren(
      TV.el("div", { class: "stat" }, "Tổng", TV.el("b", { id: "count-total" }, Object.values(counts).reduce((a, b) => a + b, 0))),
      ...Object.keys(STATUS).map(s => TV.el("div", { class: "stat", "data-status": s }, STATUS[s],
        TV.el("b", { id: "count-" + s }, counts[s] || 0))));
    $("chart").replaceChildren(TV.barChart(Object.keys(STATUS).map(s => ({ label: STATUS[s], values: [counts[s] || 0] })),
      [{ name: "Số người", color: "#1565c0" }], { title: "Số người theo trạng thái theo dõi" }));
    const tbody = $("follow-ups").tBodies[0];
    tbody.replaceChildren(...rows.map(row));
  }

  function row(f) {
    const select = TV.el("select", { class: "status", "aria-label": "Trạng thái" });
    for (const [k, v] of Object.entries(STATUS)) {
      const o = TV.el("option", { value: k }, v);
      if (k === f.status) o.selected = true;
      select.appendChild(o);
    }
    const note = TV.el("input", { class: "note", value: f.note || "", placeholder: "Ghi chú", maxlength: "2000" });
    const save = async () => {
      try {
        const path = `/v1/follow-ups/${encodeURIComponent(f.case_id)}/${encodeURIComponent(f.person_id)}`;
        await TV.api(path, { method: "PUT", json: { status: select.value, note: note.value } });
        await load();
      } catch (err) { TV.showError($("error"), err); }
    };
    select.addEventListener("change", save);
    note.addEventListener("change", save);
    const action = TV.el("td", {});
    if (f.new_case_id) {
      action.appendChild(TV.el("a", { href: "/dashboard/case?case=" + encodeURIComponent(f.new_case_id) },
        "Ca bệnh " + f.new_case_id));
    } else if (f.status === "tested_positive") {
      const b = TV.el("button", { type: "button", class: "primary register" }, "Đăng ký ca bệnh mới");
      b.addEventListener("click", () => register(f));
      action.appendChild(b);
    }
    return TV.el("tr", { "data-person": f.person_id, "data-case": f.case_id, class: "status-" + f.status },
      TV.el("td", {}, f.case_id),
      TV.el("td", {}, TV.el("span", { class: "badge f" + f.generation }, "F" + f.generation)),
      TV.el("td", {}, f.person_id),
      TV.el("td", { class: "phone" }, f.phone || "—"),
      TV.el("td", {}, select), TV.el("td", {}, note),
      TV.el("td", {}, TV.dateTime(f.updated_at) + (f.updated_by && f.updated_by !== "system" ? " · " + f.updated_by : "")),
      action);
  }

  /* A contact who tested positive becomes a case; infectious from two days before today, to now. */
  async function register(f) {
    const to = new Date(), from = new Date(to.getTime() - 2 * 86400e3);
    try {
      const path = `/v1/follow-ups/${encodeURIComponent(f.case_id)}/${encodeURIComponent(f.person_id)}/case`;
      const r = await TV.api(path, { json: { infectious_from: from.toISOString(), infectious_to: to.toISOString() } });
      $("done").textContent = `Đã đăng ký ${f.person_id} là ca bệnh ${r.case_id}; hệ thống đang truy vết và gửi cảnh báo.`;
      $("done").hidden = false;
      await load();
    } catch (err) { TV.showError($("error"), err); }
  }

  async function download(fmt) {
    try {
      const r = await TV.api("/v1/follow-ups?" + query({ format: fmt }), { raw: true });
      const blob = await r.blob();
      const url = URL.createObjectURL(blob);
      const a = TV.el("a", { href: url, download: `theo-doi-${ward.value || "tat-ca"}.${fmt}` });
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 5000);
    } catch (err) { TV.showError($("error"), err); }
  }

  for (const id of ["ward", "case", "status", "generation"]) $(id).addEventListener("change", load);
  $("xlsx").addEventListener("click", () => download("xlsx"));
  $("csv").addEventListener("click", () => download("csv"));
  const fromUrl = new URLSearchParams(location.search).get("case");
  if (fromUrl) { knownCases.add(fromUrl); $("case").appendChild(TV.el("option", { value: fromUrl }, fromUrl)); $("case").value = fromUrl; }
  load();
})();
