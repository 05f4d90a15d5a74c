/* Coverage: required vs registered vs active per ward and per category, and the trend by day. */
"use strict";
(async () => {
  const who = await TV.page("coverage");
  if (!who) return;
  const $ = id => document.getElementById(id);
  const COLORS = [{ name: "Phải quét", color: "#90a4ae" }, { name: "Đã đăng ký", color: "#1565c0" },
                  { name: "Có quét trong ngày", color: "#2e7d32" }];
  $("date").value = new URLSearchParams(location.search).get("date") || TV.todayLocal();

  $("filter").addEventListener("submit", ev => { ev.preventDefault(); load().catch(err => TV.showError($("error"), err)); });
  $("csv").addEventListener("click", async () => {
    try {
      const r = await TV.api(`/v1/reports/coverage?date=${$("date").value}&format=csv`, { raw: true });
      TV.download(`coverage-${$("date").value}.csv`, "\ufeff" + await r.text(), "text/csv;charset=utf-8");
    } catch (err) { TV.showError($("error"), err); }
  });

  function sum(rows, key, field) {
    const m = new Map();
    for (const r of rows) {
      const k = r[key], v = m.get(k) || { label: key === "category" ? (TV.CATEGORY[k] || k) : (r.ward_name || k),
                                          values: [0, 0, 0] };
      v.values[0] += r.required; v.values[1] += r.registered; v.values[2] += r.active;
      m.set(k, v);
    }
    return [...m.values()];
  }

  const turn = TV.newest();  // a second search before the first answered: only its answer is shown
  async function load() {
    const mine = turn();
    $("error").hidden = true;
    const day = $("date").value;
    const [report, trend] = await Promise.all([
      TV.api(`/v1/reports/coverage?date=${day}`),
      TV.api(`/v1/reports/coverage/trend?to=${day}&days=${$("days").value}`),
    ]);
    if (!mine()) return;
    $("result").hidden = false;
    for (const k of ["required", "registered", "active", "scans"]) $("t-" + k).textContent = report.totals[k];
    $("chart-ward").replaceChildren(TV.barChart(sum(report.rows, "ward_code"), COLORS,
      { title: `Theo phường/xã · ngày ${day}` }));
    $("chart-ward").firstChild.id = "chart-ward-svg";
    $("chart-category").replaceChildren(TV.barChart(sum(report.rows, "category"), COLORS,
      { title: `Theo loại hình · ngày ${day}` }));
    const days = trend.days.map(d => d.date);
    $("chart-trend").replaceChildren(TV.lineChart(days, [
      { ...COLORS[0], values: trend.days.map(d => d.required) },
      { ...COLORS[1], values: trend.days.map(d => d.registered) },
      { ...COLORS[2], values: trend.days.map(d => d.active) }], { title: "Xu hướng theo ngày (số cơ sở)" }));
    $("chart-trend").firstChild.id = "chart-trend-svg";
    $("chart-scans").replaceChildren(TV.lineChart(days, [{ name: "Lượt quét", color: "#6a1b9a",
      values: trend.days.map(d => d.scans) }], { title: "Lượt quét theo ngày", height: 200 }));
    const tbody = $("coverage").tBodies[0];
    tbody.replaceChildren();
    for (const r of report.rows) {
      const share = r.registered ? Math.round(100 * r.active / r.registered) + "%" : "—";
      tbody.appendChild(TV.el("tr", { class: "row" }, TV.el("td", {}, r.ward_name || r.ward_code),
        TV.el("td", {}, TV.CATEGORY[r.category] || r.category), TV.el("td", { class: "num" }, r.required),
        TV.el("td", { class: "num" }, r.registered), TV.el("td", { class: "num" }, r.active),
        TV.el("td", { class: "num" }, r.scans), TV.el("td", { class: "num" }, share)));
    }
  }
  load().catch(err => TV.showError($("error"), err));
})();
