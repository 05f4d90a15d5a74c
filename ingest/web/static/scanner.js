/* A venue's scanning page (issue 15): camera -> jsQR -> scan queued in IndexedDB -> POST /v1/scans/batch.

Reads printed personal cards (TP1.… signed payloads: person_qr), app codes (a pseudonymous person id:
person_id) and the QR of chip ID cards (CCCD: cccd_qr, turned into a pseudonym by ingest at once).
Every scan is first written to IndexedDB, so scans taken offline survive a reload; the queue is sent in
batches of up to 500 whenever the page is online (at once when the network comes back, and every few
seconds), and an item leaves the queue only once ingest has answered for it (accepted, duplicate, or
refused with its reason, which is shown). A resend after a lost answer is harmless: same scan_id. */
"use strict";
(() => {
  const $ = id => document.getElementById(id);
  const DB_NAME = "truyvet-scanner", STORE = "queue", BATCH = 500, FLUSH_MS = 3000, SAME_CODE_MS = 10000;
  const PERSON_ID = /^[A-Za-z0-9_-]{1,64}$/, RAW_ID = /^(\d{9}|\d{12})$/;
  const stats = { sent: 0, refused: 0 };
  let db = null, flushing = false, lastCode = "", lastAt = 0;

  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "scan_id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  function tx(mode, fn) {
    return new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode), store = t.objectStore(STORE);
      const out = fn(store);
      t.oncomplete = () => resolve(out && out.result !== undefined ? out.result : undefined);
      t.onerror = () => reject(t.error);
    });
  }
  const queued = () => tx("readonly", s => s.getAll(null, BATCH));
  const count = () => tx("readonly", s => s.count());
  const remove = ids => tx("readwrite", s => { for (const id of ids) s.delete(id); });

  /* What a decoded QR text is: a printed card, a CCCD chip card, or an app's person id. */
  function classify(text) {
    const t = text.trim();
    if (t.startsWith("TP1.")) return { person_qr: t, label: "Thẻ QR cá nhân" };
    const fields = t.split("|");
    if (fields.length >= 6 && /^\d{12}$/.test(fields[0])) return { cccd_qr: t, label: "Thẻ CCCD" };
    if (t.startsWith("TV1.")) return null;  // a venue's poster, not a person
    if (PERSON_ID.test(t) && !RAW_ID.test(t)) return { person_id: t, label: "Mã ứng dụng" };
    return null;
  }

  function log(text, cls) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString("vi-VN") + " · " + text;
    if (cls) li.className = cls;
    $("log").prepend(li);
    while ($("log").children.length > 30) $("log").lastChild.remove();
  }
  async function showCounts() {
    $("queued").textContent = await count();
    $("sent").textContent = stats.sent;
    $("refused").textContent = stats.refused;
  }
  function showNet() {
    $("net").textContent = navigator.onLine ? "Trực tuyến" : "Ngoại tuyến — đang lưu để gửi sau";
    $("net").className = "net " + (navigator.onLine ? "online" : "offline");
  }

  async function record(text) {
    const now = Date.now();
    if (text === lastCode && now - lastAt < SAME_CODE_MS) return;  // the same card held in front of the camera
    lastCode = text; lastAt = now;
    const person = classify(text);
    if (!person) { $("last").textContent = "Mã không hợp lệ (không phải mã cá nhân)"; return; }
    const label = person.label; delete person.label;
    const scan = Object.assign({ scan_id: crypto.randomUUID(), scanned_at: new Date(now).toISOString(),
      direction: document.querySelector("input[name=direction]:checked").value,
      venue_id: localStorage.getItem("truyvet.venue") }, person);
    await tx("readwrite", s => s.put(scan));
    $("last").textContent = `${label}: đã ghi nhận (${scan.direction === "in" ? "vào" : "ra"})`;
    await showCounts();
    flush();
  }

  async function flush() {
    if (flushing || !navigator.onLine) return;
    flushing = true;
    try {
      for (;;) {
        const items = await queued();
        if (!items.length) break;
        let r;
        try {
          r = await fetch("/v1/scans/batch", { method: "POST", body: JSON.stringify(items),
            headers: { "Content-Type": "application/json", Authorization: "Bearer " + localStorage.getItem("truyvet.device") } });
        } catch (_) { break; }  // offline or ingest unreachable: kept, sent later
        if (r.status === 401 || r.status === 403) { $("error").textContent = "Mã thiết bị không hợp lệ"; $("error").hidden = false; break; }
        if (r.status !== 202) break;  // 429 / 503: retry later, nothing lost
        const body = await r.json();
        for (const bad of body.rejected) { stats.refused += 1; log(`Bị từ chối: ${bad.error}`, "refused"); }
        stats.sent += body.accepted + body.duplicates;
        if (body.accepted) log(`Đã gửi ${body.accepted} lượt quét`, "sent");
        await remove(items.map(i => i.scan_id));
      }
    } finally {
      flushing = false;
      await showCounts();
    }
  }

  async function camera() {
    const video = $("video"), canvas = $("canvas"), ctx = canvas.getContext("2d", { willReadFrequently: true });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    video.srcObject = stream;
    await video.play();
    const tick = () => {
      if (video.readyState >= 2 && video.videoWidth) {
        canvas.width = video.videoWidth; canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const frame = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const code = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "dontInvert" });
        if (code && code.data) record(code.data).catch(err => log(String(err), "refused"));
      }
      setTimeout(tick, 250);
    };
    tick();
  }

  async function start() {
    $("setup").hidden = true; $("scan").hidden = false;
    await showCounts();
    try { await camera(); } catch (err) { $("error").textContent = "Không mở được camera: " + err; $("error").hidden = false; }
    flush();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    db = await openDb();
    showNet();
    window.addEventListener("online", () => { showNet(); flush(); });
    window.addEventListener("offline", showNet);
    setInterval(flush, FLUSH_MS);
    const params = new URLSearchParams(location.search);
    if (params.get("venue")) $("venue").value = params.get("venue");
    if (localStorage.getItem("truyvet.device") && localStorage.getItem("truyvet.venue") && !params.get("venue")) {
      start();
    }
    $("setup-form").addEventListener("submit", ev => {
      ev.preventDefault();
      localStorage.setItem("truyvet.device", $("token").value.trim());
      localStorage.setItem("truyvet.venue", $("venue").value.trim());
      start();
    });
    $("change").addEventListener("click", () => { localStorage.removeItem("truyvet.venue"); location.reload(); });
  });
})();
