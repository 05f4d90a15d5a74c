/* The registrar's page (issue 15): register a venue (POST /v1/venues), show and print its poster, and
download a ward's posters in bulk (GET /v1/venues/posters.pdf). The token stays in sessionStorage. */
"use strict";
(() => {
  const $ = id => document.getElementById(id);
  const CATEGORY = {
    office: "Văn phòng", factory: "Nhà máy, cơ sở sản xuất", food_drink: "Ăn uống tại chỗ", bar: "Quán bar",
    karaoke: "Karaoke", massage_beauty: "Massage, làm đẹp", gym: "Phòng tập thể dục",
    meeting: "Hội nghị, hội họp, đào tạo", health_facility: "Cơ sở y tế", school: "Trường học", bus_station: "Bến xe",
    public_transport: "Phương tiện công cộng", mall_supermarket: "Trung tâm thương mại, siêu thị",
    market_shop: "Chợ, cửa hàng thiết yếu", wedding: "Đám cưới", funeral: "Đám tang", tourist_site: "Điểm du lịch",
    entertainment: "Vui chơi, giải trí", spiritual_site: "Cơ sở tôn giáo, tín ngưỡng",
  };
  const token = () => $("token").value.trim() || sessionStorage.getItem("truyvet.registrar") || "";

  async function call(path, options = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
    const r = await fetch(path, Object.assign({}, options, { headers }));
    if (!r.ok) {
      let message = r.statusText;
      try { message = (await r.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(`Lỗi ${r.status}: ${message}`);
    }
    return r;
  }
  function fail(err) { $("error").textContent = String(err.message || err); $("error").hidden = false; }
  function save(blob, name) {
    const url = URL.createObjectURL(blob), a = document.createElement("a");
    a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }
  function rfc3339(local) { return local ? new Date(local).toISOString() : undefined; }

  document.addEventListener("DOMContentLoaded", () => {
    for (const [code, label] of Object.entries(CATEGORY)) {
      $("category").append(new Option(label, code));
      $("bulk-category").append(new Option(label, code));
    }
    const saved = sessionStorage.getItem("truyvet.registrar");
    if (saved) $("token").value = saved;
    $("venue-form").addEventListener("submit", async ev => {
      ev.preventDefault();
      $("error").hidden = true;
      sessionStorage.setItem("truyvet.registrar", token());
      const body = { name: $("name").value.trim(), category: $("category").value, ward_code: $("ward_code").value.trim(),
        address: $("address").value.trim(), phone: $("phone").value.trim() };
      if ($("roster_id").value) body.roster_id = $("roster_id").value.trim();
      if ($("valid_from").value) body.valid_from = rfc3339($("valid_from").value);
      if ($("valid_until").value) body.valid_until = rfc3339($("valid_until").value);
      try {
        const venue = await (await call("/v1/venues", { method: "POST", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json" } })).json();
        $("venue-id").textContent = venue.venue_id;
        $("bulk-ward").value = venue.ward_code;
        const poster = await (await call(`/v1/venues/${venue.venue_id}/poster.png`)).blob();
        $("poster-img").src = URL.createObjectURL(poster);
        $("poster").hidden = false;
        $("poster").dataset.venueId = venue.venue_id;
      } catch (err) { fail(err); }
    });
    $("print").addEventListener("click", () => window.print());
    $("bulk-form").addEventListener("submit", async ev => {
      ev.preventDefault();
      $("error").hidden = true;
      const ward = $("bulk-ward").value.trim(), cat = $("bulk-category").value;
      try {
        const r = await call(`/v1/venues/posters.pdf?ward_code=${encodeURIComponent(ward)}` + (cat ? `&category=${cat}` : ""));
        save(await r.blob(), `ap-phich-${ward}${cat ? "-" + cat : ""}.pdf`);
      } catch (err) { fail(err); }
    });
  });
})();
