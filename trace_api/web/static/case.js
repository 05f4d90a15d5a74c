/* Case page: register a case, trace it, draw the transmission graph and the exposure-site timeline. */
"use strict";
(async () => {
  const who = await TV.page("case");
  if (!who) return;
  const $ = id => document.getElementById(id);
  const error = $("error");
  const canRegister = who.role === "epidemiologist" || who.role === "admin";
  if (!canRegister) $("register-card").hidden = true;
  let current = null;  // {caseId, page, places, sites}

  // Defaults: the last three days until now, in Vietnam time, for <input type=datetime-local>.
  const local = d => new Date(d.getTime() + 7 * 3600e3).toISOString().slice(0, 16);
  $("infectious_from").value = local(new Date(Date.now() - 3 * 86400e3));
  $("infectious_to").value = local(new Date());
  const toIso = v => v + ":00+07:00";

  if (canRegister) {
    try {
      for (const c of await TV.api("/v1/dashboard/cases?limit=20"))
        $("recent").appendChild(TV.el("option", { value: c.case_id }, `${c.label || c.person_id} · ${TV.dateTime(c.created_at)}`));
    } catch (_) { /* the list is a convenience */ }
  }

  $("register").addEventListener("submit", async ev => {
    ev.preventDefault();
    error.hidden = true;
    try {
      const body = { person_id: $("person_id").value.trim(), infectious_from: toIso($("infectious_from").value),
                     infectious_to: toIso($("infectious_to").value), label: $("label").value };
      const r = await TV.api("/v1/cases", { json: body });
      $("case_id").value = r.case_id;
      history.replaceState(null, "", "?case=" + encodeURIComponent(r.case_id));
      await open(r.case_id, true);
    } catch (err) { TV.showError(error, err); }
  });
  $("open").addEventListener("submit", async ev => {
    ev.preventDefault();
    error.hidden = true;
    history.replaceState(null, "", "?case=" + encodeURIComponent($("case_id").value.trim()));
    try { await open($("case_id").value.trim(), false); } catch (err) { TV.showError(error, err); }
  });
  $("csv").addEventListener("click", () => downloadCsv().catch(err => TV.showError(error, err)));

  const turn = TV.newest();  // another case opened meanwhile (or this one again): only that one is drawn
  async function open(caseId, fresh) {
    const mine = turn();
    const depth = $("depth").value;
    // A fresh case: the scans may still be on their way through Kafka; poll briefly until contacts appear.
    const deadline = Date.now() + (fresh ? 20000 : 0);
    let page;
    $("result").hidden = false;
    for (;;) {
      page = await TV.api(`/v1/cases/${encodeURIComponent(caseId)}/contacts?depth=${depth}`);
      if (!mine()) return;
      if (page.contacts.length || Date.now() > deadline) break;
      $("waiting").hidden = false;
      await new Promise(r => setTimeout(r, 1500));
    }
    $("waiting").hidden = true;
    let sites = null;
    try { sites = await TV.api(`/v1/cases/${encodeURIComponent(caseId)}/exposure-sites`); } catch (_) { sites = null; }
    const siteList = normaliseSites(sites, page);
    const ids = new Set(siteList.map(s => s.venue_id));
    page.contacts.forEach(c => c.exposures.forEach(e => ids.add(e.venue_id)));
    const places = await TV.places([...ids]);
    if (!mine()) return;
    current = { caseId, page, places, sites: siteList };
    render();
  }

  /* Exposure sites: [{venue_id, t_in, t_out (the case's stay), from, to (the exposure window)}], from the
     exposure-sites endpoint, or (where it is missing) from the case visits found in the exposures. */
  function normaliseSites(sites, page) {
    const W = page.params.window_minutes * 60e3;
    const shift = (iso, ms) => new Date(Date.parse(iso) + ms).toISOString();
    const out = [];
    for (const s of (sites && Array.isArray(sites.sites) ? sites.sites : [])) {
      for (const span of s.spans || []) {
        const visits = span.case_visits && span.case_visits.length ? span.case_visits
          : [{ t_in: shift(span.exposed_from, W), t_out: shift(span.exposed_to, -W) }];
        for (const v of visits) {
          out.push({ venue_id: s.venue_id, t_in: v.t_in, t_out: v.t_out,
                     from: span.exposed_from || shift(v.t_in, -W), to: span.exposed_to || shift(v.t_out, W) });
        }
      }
    }
    if (out.length) return out;
    const seen = new Set();
    for (const c of page.contacts) for (const e of c.exposures) {
      if (c.generation !== 1) continue;
      const key = e.venue_id + e.case_visit.t_in;
      if (!seen.has(key)) {
        seen.add(key);
        out.push({ venue_id: e.venue_id, ...e.case_visit, from: shift(e.case_visit.t_in, -W), to: shift(e.case_visit.t_out, W) });
      }
    }
    return out;
  }

  const venueName = id => (current.places.venues[id] || {}).name || id;
  const wardName = code => current.places.wards[code] || code || "—";
  const short = p => p.length > 14 ? p.slice(0, 12) + "…" : p;

  function render() {
    const { page } = current;
    const f1 = page.contacts.filter(c => c.generation === 1), f2 = page.contacts.filter(c => c.generation === 2);
    $("case-title").textContent = `Ca bệnh ${current.caseId} · lây nhiễm ${TV.dateTime(page.params.infectious_from)} – ${TV.dateTime(page.params.infectious_to)} · cửa sổ ±${page.params.window_minutes} phút`;
    $("count-f1").textContent = f1.length;
    $("count-f2").textContent = f2.length;
    $("count-sites").textContent = new Set(current.sites.map(s => s.venue_id)).size;
    const tbody = document.querySelector("#contacts tbody");
    tbody.replaceChildren();
    for (const c of page.contacts) {
      const e = c.exposures[0];
      tbody.appendChild(TV.el("tr", { class: "contact", "data-generation": c.generation },
        TV.el("td", {}, TV.el("span", { class: "badge f" + c.generation }, "F" + c.generation)),
        TV.el("td", {}, c.person_id), TV.el("td", {}, c.via_person_id || "F0"),
        TV.el("td", {}, wardName(c.ward_code)), TV.el("td", {}, venueName(e.venue_id)),
        TV.el("td", {}, TV.dateTime(e.contact_visit.t_in)), TV.el("td", {}, TV.time(e.contact_visit.t_out)),
        TV.el("td", { class: "num" }, e.overlap_minutes), TV.el("td", { class: "num" }, c.exposures.length)));
    }
    $("graph").replaceChildren(graph(f1, f2));
    $("timeline").replaceChildren(timeline());
  }

  /* F0 -> F1 -> F2 in three columns; F2 placed next to the F1 they came through. Large traces are capped. */
  function graph(f1, f2) {
    const MAX1 = 40, MAX2 = 80, rowH = 20, top = 40, width = 900;
    const colX = [90, 400, 710];
    const shown1 = f1.slice(0, MAX1);
    const byVia = new Map(shown1.map(c => [c.person_id, []]));
    // Round robin over the F1s, so each shown F1 gets some of its F2s before any gets many.
    const pending = new Map([...byVia.keys()].map(k => [k, []]));
    for (const c of f2) if (pending.has(c.via_person_id)) pending.get(c.via_person_id).push(c);
    let count2 = 0;
    for (let round = 0; count2 < MAX2; round++) {
      let added = false;
      for (const [via, list] of pending) {
        if (round < list.length && count2 < MAX2) { byVia.get(via).push(list[round]); count2++; added = true; }
      }
      if (!added) break;
    }
    const hidden2 = f2.length - count2;
    const order2 = [...byVia.values()].flat();
    const rows = Math.max(shown1.length + (f1.length > MAX1 ? 1 : 0), order2.length + (hidden2 ? 1 : 0), 1);
    const height = top + rows * rowH + 20;
    const root = TV.svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg", class: "graph", role: "img" });
    root.appendChild(TV.svg("title", {}, "Sơ đồ lây truyền"));
    ["F0 (ca bệnh)", `F1 (${f1.length})`, `F2 (${f2.length})`].forEach((t, i) =>
      root.appendChild(TV.svg("text", { x: colX[i], y: 18, "text-anchor": "middle", class: "chart-title" }, t)));
    const y1 = new Map(), y2 = new Map();
    const spread = (n, i) => top + (rows - n) * rowH / 2 + i * rowH + rowH / 2;
    shown1.forEach((c, i) => y1.set(c.person_id, spread(shown1.length, i)));
    order2.forEach((c, i) => y2.set(c.person_id, spread(order2.length, i)));
    const y0 = top + rows * rowH / 2;
    const edges = TV.svg("g", {}), nodes = TV.svg("g", {});
    root.append(edges, nodes);
    const node = (x, y, cls, label, color, anchorRight) => {
      const g = TV.svg("g", { class: "node " + cls });
      g.appendChild(TV.svg("circle", { cx: x, cy: y, r: cls === "f0" ? 11 : 6, fill: color }));
      g.appendChild(TV.svg("text", { x: anchorRight ? x - 12 : x + 10, y: y + 4, class: "node-label",
                                     "text-anchor": anchorRight ? "end" : "start" }, label));
      g.appendChild(TV.svg("title", {}, label));
      nodes.appendChild(g);
    };
    const curve = (xa, ya, xb, yb) => TV.svg("path", { class: "edge", d: `M${xa},${ya} C${(xa + xb) / 2},${ya} ${(xa + xb) / 2},${yb} ${xb},${yb}` });
    for (const c of shown1) edges.appendChild(curve(colX[0], y0, colX[1], y1.get(c.person_id)));
    for (const c of order2) edges.appendChild(curve(colX[1], y1.get(c.via_person_id), colX[2], y2.get(c.person_id)));
    node(colX[0], y0, "f0", "F0", "#c62828", true);
    for (const c of shown1) node(colX[1], y1.get(c.person_id), "f1", short(c.person_id), "#ef6c00", false);
    for (const c of order2) node(colX[2], y2.get(c.person_id), "f2", short(c.person_id), "#f9a825", false);
    if (f1.length > MAX1) root.appendChild(TV.svg("text", { x: colX[1], y: top + rows * rowH, class: "muted" }, `+${f1.length - MAX1} F1 khác`));
    if (hidden2) root.appendChild(TV.svg("text", { x: colX[2], y: top + rows * rowH + 10, class: "muted" }, `+${hidden2} F2 khác`));
    return root;
  }

  /* One lane per exposure site; the case's stay in red, the ±W exposure window in orange. */
  function timeline() {
    const sites = current.sites;
    const width = 900, left = 230, right = 20, laneH = 26, top = 30;
    const venues = [...new Set(sites.map(s => s.venue_id))];
    const height = top + Math.max(venues.length, 1) * laneH + 30;
    const root = TV.svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "timeline-svg", class: "timeline", role: "img" });
    root.appendChild(TV.svg("title", {}, "Địa điểm phơi nhiễm theo thời gian"));
    if (!sites.length) { root.appendChild(TV.svg("text", { x: 10, y: 40 }, "Chưa có địa điểm phơi nhiễm.")); return root; }
    const t0 = Math.min(...sites.map(s => Date.parse(s.from))), t1 = Math.max(...sites.map(s => Date.parse(s.to)));
    const x = t => left + (t - t0) / Math.max(t1 - t0, 1) * (width - left - right);
    venues.forEach((v, i) => {
      const y = top + i * laneH;
      root.appendChild(TV.svg("rect", { x: left, y, width: width - left - right, height: laneH - 4, class: "lane" }));
      root.appendChild(TV.svg("text", { x: left - 8, y: y + laneH / 2 + 2, "text-anchor": "end" }, venueName(v)));
    });
    for (const s of sites) {
      const y = top + venues.indexOf(s.venue_id) * laneH;
      const a = Date.parse(s.t_in), b = Date.parse(s.t_out);
      const wa = Date.parse(s.from), wb = Date.parse(s.to);
      root.appendChild(TV.svg("rect", { x: x(wa), y: y + 3, width: Math.max(x(wb) - x(wa), 2), height: laneH - 10, class: "window" }));
      const bar = TV.svg("rect", { x: x(a), y: y + 5, width: Math.max(x(b) - x(a), 2), height: laneH - 14, class: "visit" });
      bar.appendChild(TV.svg("title", {}, `${venueName(s.venue_id)}: ${TV.dateTime(s.t_in)} – ${TV.dateTime(s.t_out)}`));
      root.appendChild(bar);
    }
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (t1 - t0) * i / ticks;
      const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
      root.appendChild(TV.svg("text", { x: x(t), y: height - 8, "text-anchor": anchor, class: "axis-label" }, TV.dateTime(new Date(t).toISOString())));
    }
    return root;
  }

  async function downloadCsv() {
    if (!current) return;
    const depth = $("depth").value;
    const r = await TV.api(`/v1/cases/${encodeURIComponent(current.caseId)}/contacts?depth=${depth}&format=csv`, { raw: true });
    let text;
    if ((r.headers.get("content-type") || "").startsWith("text/csv")) {
      text = await r.text();
    } else {  // the server has no CSV export yet: build it here, formula cells neutralised
      const rows = [["case_id", "generation", "person_id", "via_person_id", "ward_code", "ward_name", "venue_id",
                     "venue_name", "contact_t_in", "contact_t_out", "case_t_in", "case_t_out", "overlap_minutes"]];
      for (const c of current.page.contacts) for (const e of c.exposures)
        rows.push([current.caseId, c.generation, c.person_id, c.via_person_id || "", c.ward_code, wardName(c.ward_code),
                   e.venue_id, venueName(e.venue_id), e.contact_visit.t_in, e.contact_visit.t_out, e.case_visit.t_in,
                   e.case_visit.t_out, e.overlap_minutes]);
      text = rows.map(r => r.map(TV.csvCell).join(",")).join("\r\n") + "\r\n";
    }
    TV.download(`contacts-${current.caseId}.csv`, "\ufeff" + text.replace(/^\ufeff/, ""), "text/csv;charset=utf-8");
  }

  const q = new URLSearchParams(location.search).get("case");
  if (q) { $("case_id").value = q; try { await open(q, false); } catch (err) { TV.showError(error, err); } }
})();
