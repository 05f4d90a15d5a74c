/* Truy Vết dashboard: shared helpers (token, API calls, navigation, SVG drawing). No dependencies. */
"use strict";

const TV = (() => {
  const KEY = "truyvet.token";
  const SVGNS = "http://www.w3.org/2000/svg";
  const TZ = "Asia/Ho_Chi_Minh";

  const CATEGORY = {
    office: "Trụ sở làm việc", factory: "Nhà máy, cơ sở sản xuất", food_drink: "Ăn uống tại chỗ",
    bar: "Quán bar", karaoke: "Karaoke", massage_beauty: "Massage, làm đẹp", gym: "Phòng tập thể hình",
    meeting: "Hội họp, hội nghị", health_facility: "Bệnh viện, cơ sở y tế", school: "Trường học",
    bus_station: "Bến xe", public_transport: "Phương tiện công cộng", mall_supermarket: "TTTM, siêu thị",
    market_shop: "Chợ, cửa hàng thiết yếu", wedding: "Đám cưới", funeral: "Đám tang",
    tourist_site: "Điểm tham quan, du lịch", entertainment: "Vui chơi, giải trí", spiritual_site: "Khu tâm linh",
  };
  const ROLE = {
    admin: "Quản trị", epidemiologist: "Trung tâm Y tế (dịch tễ)", health_center: "Trạm y tế phường/xã",
    registrar: "Đăng ký địa điểm", device: "Thiết bị quét", viewer: "Văn phòng UBND (báo cáo)",
  };

  function token() { return sessionStorage.getItem(KEY); }
  function setToken(t) { sessionStorage.setItem(KEY, t); }
  function logout() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(KEY + ".me"); location.href = "/dashboard/"; }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options = Object.assign({}, options, { body: JSON.stringify(options.json), method: options.method || "POST" });
    }
    const r = await fetch(path, Object.assign({}, options, { headers }));
    if (r.status === 401) {  // a revoked or wrong token: back to the login page (unless already there)
      if (location.pathname !== "/dashboard/") logout();
      throw new ApiError(401, "unauthorized", "Mã truy cập không hợp lệ");
    }
    if (!r.ok) {
      let code = "error", message = r.statusText;
      try { const e = (await r.json()).error; code = e.code; message = e.message; } catch (_) { /* not JSON */ }
      throw new ApiError(r.status, code, message);
    }
    return options.raw ? r : r.json();
  }

  /* Names of venues and wards (POST /v1/dashboard/places, at most 1000 venue ids a request): empty ids
     (a declaration alert has no venue) are left out, larger sets asked in parts. */
  async function places(venueIds = []) {
    const ids = [...new Set(venueIds)].filter(Boolean);
    const out = await api("/v1/dashboard/places", { json: { venue_ids: ids.slice(0, 1000) } });
    for (let i = 1000; i < ids.length; i += 1000) {
      Object.assign(out.venues, (await api("/v1/dashboard/places", { json: { venue_ids: ids.slice(i, i + 1000) } })).venues);
    }
    return out;
  }

  async function me() {
    const cached = sessionStorage.getItem(KEY + ".me");
    if (cached) return JSON.parse(cached);
    const who = await api("/v1/dashboard/me");
    sessionStorage.setItem(KEY + ".me", JSON.stringify(who));
    return who;
  }

  /* Every page but the login page: require a token, show who is logged in, build the menu. */
  async function page(active) {
    const m = location.hash.match(/token=([^&]+)/);  // a ready link: #token=... never reaches a server log
    if (m) {
      setToken(decodeURIComponent(m[1]));
      sessionStorage.removeItem(KEY + ".me");
      history.replaceState(null, "", location.pathname + location.search);
    }
    if (!token()) { location.href = "/dashboard/"; return null; }
    const who = await me();
    const nav = document.getElementById("nav");
    const health = ["admin", "epidemiologist", "health_center"];
    const links = [["case", "Ca bệnh & truy vết", health], ["alerts", "Cảnh báo", health],
                   ["followups", "Theo dõi người tiếp xúc", health],
                   ["coverage", "Độ phủ quét mã QR", [...health, "viewer"]],
                   ["compliance", "Tuân thủ theo cơ sở", [...health, "viewer", "registrar"]]];  // issue 15
    for (const [href, label, roles] of links) {
      if (!roles.includes(who.role)) continue;  // the API would answer 403 anyway
      const a = el("a", { href: "/dashboard/" + href, class: href === active ? "active" : "" }, label);
      nav.appendChild(a);
    }
    const whoText = (ROLE[who.role] || who.role) + (who.ward_name ? " · " + who.ward_name : "") +
      (who.name ? " · " + who.name : "");
    nav.appendChild(el("span", { class: "who", id: "who" }, whoText));
    const out = el("button", { type: "button", class: "link" }, "Đăng xuất");
    out.addEventListener("click", logout);
    nav.appendChild(out);
    return who;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  const fmtTime = new Intl.DateTimeFormat("vi-VN", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
  const fmtDateTime = new Intl.DateTimeFormat("vi-VN", {
    timeZone: TZ, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
  function time(iso) { return fmtTime.format(new Date(iso)); }
  function dateTime(iso) { return fmtDateTime.format(new Date(iso)); }
  function todayLocal() { return new Date(Date.now() + 7 * 3600e3).toISOString().slice(0, 10); }

  /* Filters change faster than answers come: only the newest request's answer may be shown.
     `const turn = TV.newest();` then in a loader `const mine = turn(); ... await ...; if (!mine()) return;` */
  function newest() {
    let asked = 0;
    return () => { const mine = ++asked; return () => mine === asked; };
  }

  function showError(target, err) {
    target.textContent = err.status ? `Lỗi ${err.status}: ${err.message}` : String(err);
    target.hidden = false;
  }

  /* A CSV cell a spreadsheet will not run as a formula. */
  function csvCell(v) {
    let s = v === null || v === undefined ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(text instanceof Blob ? text : new Blob([text], { type }));
    const a = el("a", { href: url, download: name });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }

  /* Grouped horizontal bars: groups [{label, values:[...]}], series [{name, color}]. */
  function barChart(groups, series, { title = "", width = 760 } = {}) {
    const labelW = 210, barH = 12, gap = 10, top = 40, right = 60;
    const groupH = series.length * barH + gap;
    const height = top + groups.length * groupH + 10;
    const max = Math.max(1, ...groups.flatMap(g => g.values));
    const scale = (width - labelW - right) / max;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart bar-chart", role: "img" });
    root.appendChild(svg("title", {}, title));
    root.appendChild(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
    series.forEach((s, i) => {
      const x = labelW + i * 150;
      root.appendChild(svg("rect", { x, y: 24, width: 10, height: 10, fill: s.color }));
      root.appendChild(svg("text", { x: x + 14, y: 33, class: "legend" }, s.name));
    });
    groups.forEach((g, gi) => {
      const y0 = top + gi * groupH;
      root.appendChild(svg("text", { x: labelW - 8, y: y0 + groupH / 2, class: "axis-label", "text-anchor": "end" }, g.label));
      g.values.forEach((v, si) => {
        const y = y0 + si * barH;
        root.appendChild(svg("rect", { x: labelW, y, width: Math.max(v * scale, v ? 1 : 0), height: barH - 2,
          fill: series[si].color, class: "bar", "data-series": series[si].name, "data-value": v }));
        root.appendChild(svg("text", { x: labelW + v * scale + 4, y: y + barH - 3, class: "value" }, v));
      });
    });
    return root;
  }

  /* Lines over days: days ["YYYY-MM-DD"], series [{name, color, values}]. */
  function lineChart(days, series, { title = "", width = 760, height = 260 } = {}) {
    const left = 50, right = 20, top = 44, bottom = 30;
    const max = Math.max(1, ...series.flatMap(s => s.values));
    const x = i => left + (days.length < 2 ? 0 : i * (width - left - right) / (days.length - 1));
    const y = v => top + (height - top - bottom) * (1 - v / max);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart line-chart", role: "img" });
    root.appendChild(svg("title", {}, title));
    root.appendChild(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
    for (const f of [0, 0.5, 1]) {
      const v = Math.round(max * f);
      root.appendChild(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      root.appendChild(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis-label" }, v));
    }
    const every = Math.ceil(days.length / 15);  // at most ~15 date labels (28-day charts stay readable)
    days.forEach((d, i) => (i % every === (days.length - 1) % every) && root.appendChild(
      svg("text", { x: x(i), y: height - 10, "text-anchor": "middle", class: "axis-label" }, d.slice(8) + "/" + d.slice(5, 7))));
    series.forEach((s, si) => {
      const lx = left + si * 150;
      root.appendChild(svg("rect", { x: lx, y: 24, width: 10, height: 10, fill: s.color }));
      root.appendChild(svg("text", { x: lx + 14, y: 33, class: "legend" }, s.name));
      const points = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      root.appendChild(svg("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2.5, class: "series" }));
      s.values.forEach((v, i) => root.appendChild(svg("circle", { cx: x(i), cy: y(v), r: 3.5, fill: s.color })));
    });
    return root;
  }

  return { token, setToken, logout, api, places, me, page, el, svg, time, dateTime, todayLocal, newest, showError,
           csvCell, download, barChart, lineChart, CATEGORY, ROLE, ApiError };
})();
