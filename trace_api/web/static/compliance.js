/* Compliance by establishment (issue 15): who must scan, who does; the 28-day trend; posters in bulk. */
"use strict";
(async () => {
  const who = await TV.page("compliance");
  if (!who) return;
  const $ = id => document.getElementById(id);
  const STATUS = { not_registered: "Chưa đăng ký", silent: "Đã đăng ký, không quét", scanning: "Đang quét" };
  const COLORS = { not_registered: "#c62828", silent: "#ef6c00", scanning: "#2e7d32" };
  const readers = ["admin", "epidemiologist", "health_center", "viewer"];
  const printers = ["admin", "registrar"];
  let places = { wards: {} };
  try { places = await TV.places(); } catch (_) { /* registrar */ }
  if (!Object.keys(places.wards).length && who.ward_code) places.wards[who.ward_code] = who.ward_name || who.ward_code;

  function fillWards(select, withAll) {
    if (who.role === "health_center") {
      select.appendChild(TV.el("option", { value: who.ward_code }, who.ward_name || who.ward_code));
      select.disabled = true;
      return;
    }
    if (withAll) select.appendChild(TV.el("option", { value: "" }, "Tất cả phường/xã"));
    for (const [code, name] of Object.entries(places.wards)) select.appendChild(TV.el("option", { value: code }, name));
  }
  for (const id of ["category", "posters-category"])
    for (const [code, label] of Object.entries(TV.CATEGORY)) $(id).appendChild(TV.el("option", { value: code }, label));
  const params = new URLSearchParams(location.search);
  $("date").value = params.get("date") || TV.todayLocal();

  if (printers.includes(who.role)) {
    $("posters").hidden = false;
    if (who.role === "registrar") {  // a registrar may ask for any ward's posters (its ward list is typed in)
      const input = TV.el("input", { id: "posters-ward-code", placeholder: "Mã phường/xã", required: "" });
      $("posters-ward").replaceWith(input);
    } else {
      fillWards($("posters-ward"), false);
    }
    $("posters-form").addEventListener("submit", async ev => {
      ev.preventDefault();
      const ward = ($("posters-ward") || $("posters-ward-code")).value;
      const cat = $("posters-category").value;
      $("posters-status").textContent = "Đang tạo áp phích…";
      try {
        const r = await TV.api(`/v1/dashboard/posters.pdf?ward_code=${encodeURIComponent(ward)}` +
                               (cat ? `&category=${cat}` : ""), { raw: true });
        TV.download(`ap-phich-${ward}${cat ? "-" + cat : ""}.pdf`, await r.blob(), "application/pdf");
        $("posters-status").textContent = "Đã tải áp phích.";
      } catch (err) { $("posters-status").textContent = ""; TV.showError($("error"), err); }
    });
  }
  if (!readers.includes(who.role)) { $("report-filter").hidden = true; return; }
  fillWards($("ward"), true);
  if (params.get("ward") && who.role !== "health_center") $("ward").value = params.get("ward");
  if (params.get("category")) $("category").value = params.get("category");

  function query(extra) {
    const q = new URLSearchParams({ date: $("date").value, ...extra });
    if ($("ward").value) q.set("ward_code", $("ward").value);
    if ($("category").value) q.set("category", $("category").value);
    return q.toString();
  }
  async function save(format, type) {
    try {
      const r = await TV.api(`/v1/reports/compliance?${query({ format })}`, { raw: true });
      TV.download(`tuan-thu-${$("ward").value || "tat-ca"}-${$("date").value}.${format}`, await r.blob(), type);
    } catch (err) { TV.showError($("error"), err); }
  }
  $("pdf").addEventListener("click", () => save("pdf", "application/pdf"));
  $("xlsx").addEventListener("click", () => save("xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"));
  $("filter").addEventListener("submit", ev => { ev.preventDefault(); load().catch(err => TV.showError($("error"), err)); });
  $("status").addEventListener("change", () => render());

  let rows = [];
  function render() {
    const wanted = $("status").value;
    const tbody = $("establishments").tBodies[0];
    tbody.replaceChildren();
    for (const r of rows) {
      if (wanted && r.status !== wanted) continue;
      tbody.appendChild(TV.el("tr", { class: "row", "data-status": r.status, "data-roster-id": r.roster_id },
        TV.el("td", {}, r.name), TV.el("td", {}, r.address), TV.el("td", {}, TV.CATEGORY[r.category] || r.category),
        TV.el("td", { class: "status-" + r.status }, STATUS[r.status]), TV.el("td", {}, r.venue_ids.join(", ")),
        TV.el("td", {}, r.last_scan_date || "—")));
    }
  }

  const turn = TV.newest();  // a second search before the first answered: only its answer is shown
  async function load() {
    const mine = turn();
    $("error").hidden = true;
    $("ward-title").textContent = $("ward").value ? "· " + (places.wards[$("ward").value] || $("ward").value) : "";
    const trendQuery = new URLSearchParams({ to: $("date").value, days: "28" });
    if ($("ward").value) trendQuery.set("ward_code", $("ward").value);
    if ($("category").value) trendQuery.set("category", $("category").value);
    const [report, trend] = await Promise.all([
      TV.api(`/v1/reports/compliance?${query({})}`),
      TV.api(`/v1/reports/compliance/trend?${trendQuery}`),
    ]);
    if (!mine()) return;
    rows = report.establishments;
    $("result").hidden = false;
    $("t-all").textContent = rows.length;
    for (const s of Object.keys(STATUS)) $("t-" + s).textContent = rows.filter(r => r.status === s).length;
    const days = trend.days.map(d => d.date);
    $("chart-trend").replaceChildren(TV.lineChart(days, Object.keys(STATUS).map(s => (
      { name: STATUS[s], color: COLORS[s], values: trend.days.map(d => d[s]) })),
      { title: "Xu hướng 28 ngày (số cơ sở theo trạng thái)", width: 1000 }));
    $("chart-trend").firstChild.id = "chart-trend-svg";
    const byCat = new Map();
    for (const r of rows) {
      const g = byCat.get(r.category) || { label: TV.CATEGORY[r.category] || r.category, values: [0, 0, 0] };
      g.values[Object.keys(STATUS).indexOf(r.status)] += 1;
      byCat.set(r.category, g);
    }
    $("chart-category").replaceChildren(TV.barChart([...byCat.values()],
      Object.keys(STATUS).map(s => ({ name: STATUS[s], color: COLORS[s] })), { title: "Theo loại hình" }));
    render();
  }
  load().catch(err => TV.showError($("error"), err));
})();
