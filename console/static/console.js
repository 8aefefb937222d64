// Limes operator console: Leaflet map (no tiles: the site is drawn from /api/site),
// live state over Server-Sent Events (/api/events), alert queue and actions, health.
// Every string from the service is inserted as text, never as HTML.
"use strict";

(function () {
  const PRIO_COLOUR = { 1: "#c0101a", 2: "#e8590c", 3: "#e0a800", 4: "#1c9ab8" };
  const STATE_COLOUR = { online: "#1d7a3a", offline: "#d9822b", fault: "#c0101a", unknown: "#8a8f96" };
  const CLASS_LETTER = { person: "P", group: "G", vehicle: "V", animal: "A", walking: "W", running: "R", digging: "D", climbing: "C" };
  const ARROW_S = 60; // velocity arrow: where the track will be in this many seconds

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const utc = (t) => (t ? new Date(t * 1000).toISOString().slice(11, 19) + "Z" : "-");

  const S = {
    me: null, csrf: "", site: null, map: null, es: null,
    tracks: new Map(), alerts: new Map(), health: { devices: [], dead_letters: {} }, patrols: [],
    selected: null, t: 0, layers: {}, fibreLines: new Map(), blind: null,
  };

  // ---- session ---------------------------------------------------------------------------

  async function api(path, opts) {
    const o = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
    if (o.method === "POST") {
      o.headers["Content-Type"] = "application/json";
      o.headers["X-CSRF-Token"] = S.csrf;
    }
    const r = await fetch(path, o);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, ok: r.ok, body };
  }

  function showLogin(msg) {
    if (S.es) { S.es.close(); S.es = null; }
    S.me = null;
    $("main").hidden = true;
    $("login").hidden = false;
    $("logout-btn").hidden = true;
    $("who").textContent = "";
    $("login-msg").textContent = msg || "";
    $("username").focus();
  }

  async function start(me) {
    S.me = me; S.csrf = me.csrf;
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout-btn").hidden = false;
    $("who").textContent = me.user + " (" + me.role + ")";
    const canAct = me.role === "operator";
    $("actions").hidden = !canAct;
    $("readonly").hidden = canAct;
    if (!S.site) {
      const r = await api("/api/site");
      if (r.status === 401) return showLogin();
      S.site = r.body;
      drawSite();
    }
    S.map.invalidateSize();
    if (!S.fitted) { S.fitted = true; S.map.fitBounds(S.site.bounds, { padding: [10, 10] }); }
    connect();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("/api/login", {
      method: "POST",
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    $("password").value = "";
    if (!r.ok) { $("login-msg").textContent = (r.body && r.body.error) || "login failed"; return; }
    start(r.body);
  });

  $("logout-btn").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST", body: "{}" });
    showLogin("Logged out.");
  });

  // ---- live stream -----------------------------------------------------------------------

  function connect() {
    if (S.es) S.es.close();
    const es = new EventSource("/api/events");
    S.es = es;
    const conn = $("conn");
    es.onopen = () => { conn.textContent = "live"; conn.className = "conn on"; };
    es.onerror = async () => {
      conn.textContent = "reconnecting"; conn.className = "conn off";
      const r = await api("/api/session");
      if (r.ok && r.body && !r.body.user) showLogin("Session ended; log in again.");
    };
    es.addEventListener("snapshot", (e) => {
      const s = JSON.parse(e.data);
      S.t = s.t;
      S.tracks.clear();
      for (const u of s.tracks) S.tracks.set(u.track_id, u);
      S.alerts.clear();
      for (const a of s.alerts) S.alerts.set(a.alert_id, a);
      S.health = s.health; S.patrols = s.patrols;
      renderAll();
    });
    es.addEventListener("tracks", (e) => {
      for (const u of JSON.parse(e.data)) {
        S.t = Math.max(S.t, u.t);
        if (u.status === "lost") S.tracks.delete(u.track_id); else S.tracks.set(u.track_id, u);
      }
      renderTracks(); renderClock();
    });
    es.addEventListener("alert", (e) => {
      const a = JSON.parse(e.data);
      S.t = Math.max(S.t, a.t);
      S.alerts.set(a.alert_id, a);
      renderAlerts(); renderClock();
      if (S.selected === a.alert_id) renderDetail(true);
    });
    es.addEventListener("health", (e) => { S.health = JSON.parse(e.data); renderHealth(); });
    es.addEventListener("patrols", (e) => { S.patrols = JSON.parse(e.data); renderPatrols(); });
  }

  // ---- map: static site ------------------------------------------------------------------

  const ll = (p) => [p[1], p[0]]; // [lon, lat] -> Leaflet [lat, lon]

  function initMap() {
    S.map = L.map("map", { zoomControl: true, attributionControl: false, preferCanvas: false, minZoom: 6, maxZoom: 18 });
    S.map.setView([45.4, 21.0], 8);
    for (const name of ["site", "fibre", "devices", "patrols", "tracks", "alerts"]) {
      S.layers[name] = L.layerGroup().addTo(S.map);
    }
    L.control.scale({ imperial: false }).addTo(S.map);
    const legend = L.control({ position: "bottomleft" });
    legend.onAdd = () => {
      const d = el("div", "legend");
      const rows = [
        ["#222", "border (RO left / RS right)"], ["#2f6fd6", "Danube border"],
        ["#1d7a3a", "fibre covered"], ["#c0101a", "fibre blind (cut / fault)"],
      ];
      for (const [c, t] of rows) {
        const r = el("div"); const i = el("i"); i.style.background = c; r.append(i, document.createTextNode(t)); d.append(r);
      }
      d.append(el("div", null, "tracks: P person, G group, V vehicle, A animal; arrow = 1 min ahead, circle = 1σ"));
      return d;
    };
    legend.addTo(S.map);
  }

  function drawSite() {
    const site = S.site;
    $("site-name").textContent = "site " + site.name + " · " + site.home + "–" + site.neighbour;
    const g = S.layers.site;
    for (const line of site.other_lines) {
      L.polyline(line.lonlat.map(ll), { color: "#2f6fd6", weight: 4, opacity: 0.8 }).bindTooltip(line.name).addTo(g);
    }
    L.polyline(site.border.map(ll), { color: "#222", weight: 3 }).bindTooltip("Romania–Serbia land border").addTo(g);
    for (const s of site.sectors) {
      L.circleMarker(ll(s.start), { radius: 3, color: "#222", weight: 1, fillColor: "#fff", fillOpacity: 1 }).addTo(g);
      L.marker(ll(s.label), {
        icon: L.divIcon({ className: "", html: "", iconSize: null }),
        interactive: false,
      }).addTo(g).getElement().append(el("div", "sector-label", s.id + (s.name ? " " + s.name : "")));
    }
    for (const f of site.fibre) {
      const line = L.polyline(f.lonlat.map(ll), { color: STATE_COLOUR.unknown, weight: 3, dashArray: "6 4" });
      line.bindTooltip(f.id).addTo(S.layers.fibre);
      S.fibreLines.set(f.id, line);
    }
    S.blind = L.layerGroup().addTo(S.layers.fibre);
  }

  // ---- render ----------------------------------------------------------------------------

  function renderAll() { renderClock(); renderTracks(); renderAlerts(); renderHealth(); renderPatrols(); if (S.selected) renderDetail(false); }

  function renderClock() { $("clock").textContent = utc(S.t); }

  function trackIcon(u) {
    const side = S.site && u.side === S.site.home ? "home" : "neighbour";
    const cls = u.class === "animal" ? "animal" : side;
    const d = el("div", "trk " + cls + (u.status === "tentative" ? " tentative" : ""), CLASS_LETTER[u.class] || "?");
    d.title = u.track_id + " " + u.class;
    return L.divIcon({ className: "", html: d.outerHTML, iconSize: [22, 22], iconAnchor: [11, 11] });
  }

  function renderTracks() {
    const g = S.layers.tracks;
    g.clearLayers();
    for (const u of S.tracks.values()) {
      const p = [u.lat, u.lon];
      L.circle(p, { radius: Math.max(u.pos_sigma_m, 1), color: "#6b3fa0", weight: 1, fillOpacity: 0.08, interactive: false }).addTo(g);
      const speed = Math.hypot(u.vx, u.vy);
      if (speed > 0.05) {
        // grid velocity -> approximate geographic offset for the arrow (metres to degrees)
        const dlat = (u.vy * ARROW_S) / 111320, dlon = (u.vx * ARROW_S) / (111320 * Math.cos((u.lat * Math.PI) / 180));
        L.polyline([p, [u.lat + dlat, u.lon + dlon]], { color: "#1d2430", weight: 2, interactive: false }).addTo(g);
      }
      const m = L.marker(p, { icon: trackIcon(u), zIndexOffset: 500 }).addTo(g);
      m.bindTooltip(u.track_id + " · " + u.class + " p=" + Number(u.class_p).toFixed(2) + " · " + u.status + " · " + u.side + " " + Math.round(u.border_dist_m) + " m from line · " + (u.sensors || []).join(", "));
    }
  }

  function sortedAlerts() {
    const rank = (a) => (a.state === "resolved" ? 1 : 0);
    return [...S.alerts.values()].sort((a, b) => rank(a) - rank(b) || a.priority - b.priority || b.t - a.t);
  }

  function renderAlerts() {
    const list = $("alert-list");
    list.replaceChildren();
    const g = S.layers.alerts;
    g.clearLayers();
    let active = 0;
    for (const a of sortedAlerts()) {
      const li = el("li", "alert-item p" + a.priority + (a.state === "resolved" ? " resolved" : "") + (S.selected === a.alert_id ? " selected" : ""));
      li.dataset.alertId = a.alert_id; li.dataset.kind = a.kind; li.dataset.state = a.state;
      li.append(el("span", "prio", "P" + a.priority));
      const head = el("span", "head", a.kind.replace("_", " ") + " · " + a.sector);
      head.append(el("span", "state " + a.state, a.state));
      li.append(head, el("span", "when", utc(a.t)), el("span", "sum", a.summary));
      li.addEventListener("click", () => select(a.alert_id, true));
      list.append(li);
      if (a.state === "resolved") continue;
      active += 1;
      const size = a.priority <= 2 ? 38 : 30;
      const ring = el("div", "alert-ring"); ring.style.borderColor = PRIO_COLOUR[a.priority] || "#999";
      ring.style.width = size + "px"; ring.style.height = size + "px";
      const m = L.marker([a.lat, a.lon], { icon: L.divIcon({ className: "", html: ring.outerHTML, iconSize: [size, size], iconAnchor: [size / 2, size / 2] }), zIndexOffset: 1000 }).addTo(g);
      m.bindTooltip("P" + a.priority + " " + a.kind + " (" + a.state + "): " + a.summary);
      m.on("click", () => select(a.alert_id, false));
    }
    $("alert-count").textContent = active + " active / " + S.alerts.size;
  }

  function select(id, pan) {
    S.selected = id;
    $("note").value = "";
    setMsg("", "");
    renderAlerts();
    renderDetail(true);
    const a = S.alerts.get(id);
    if (pan && a) S.map.setView([a.lat, a.lon], Math.min(Math.max(S.map.getZoom(), 13), 15));
  }

  function fact(dl, k, v) { dl.append(el("dt", null, k), el("dd", null, v)); }

  async function renderDetail(withAudit) {
    const a = S.alerts.get(S.selected);
    $("detail-panel").hidden = !a;
    if (!a) return;
    $("detail-title").textContent = "P" + a.priority + " " + a.kind + " — " + a.state;
    $("detail-summary").textContent = a.summary;
    const dl = $("detail-facts"); dl.replaceChildren();
    fact(dl, "alert", a.alert_id);
    fact(dl, "sector", a.sector);
    fact(dl, "position", a.lat.toFixed(5) + ", " + a.lon.toFixed(5));
    fact(dl, "track", a.track_id || "-");
    fact(dl, "sensors", (a.sensors || []).join(", ") || "-");
    fact(dl, "recommended", (a.recommended_units || []).join(", ") || "-");
    fact(dl, "assigned", a.x_assigned_unit ? a.x_assigned_unit + " by " + a.x_assigned_by : "-");
    fact(dl, "joint patrol", a.x_ccp_request_id || "-");
    const sel = $("unit-select"); const cur = sel.value; sel.replaceChildren();
    const units = [...(a.recommended_units || [])];
    for (const p of S.patrols) if (!units.includes(p.unit) && p.available && !p.tasked_to) units.push(p.unit);
    units.forEach((u, i) => {
      const o = el("option", null, u + (i < (a.recommended_units || []).length ? " (recommended)" : ""));
      o.value = u; sel.append(o);
    });
    if (units.includes(cur)) sel.value = cur;
    const done = a.state === "resolved";
    for (const id of ["btn-ack", "btn-escalate", "btn-resolve", "btn-assign", "btn-ccp"]) $(id).disabled = done;
    $("btn-ack").disabled = done || a.state === "acknowledged";
    $("btn-escalate").disabled = done || a.state === "escalated";
    $("btn-ccp").disabled = done || !!a.x_ccp_request_id;
    $("btn-assign").disabled = done || units.length === 0;
    if (withAudit) {
      const r = await api("/api/alerts/" + encodeURIComponent(a.alert_id) + "/audit");
      const ol = $("audit"); ol.replaceChildren();
      if (r.ok) for (const e of r.body) ol.append(el("li", null, utc(Number(e.t)) + " " + e.event + " → " + e.state + " by " + e.who + (e.why ? ": " + e.why : "")));
    }
  }

  function setMsg(text, cls) { const m = $("action-msg"); m.textContent = text; m.className = cls; }

  async function act(action) {
    const id = S.selected;
    if (!id) return;
    const note = $("note").value.trim();
    if (["ack", "escalate", "resolve"].includes(action) && !note) { setMsg("A note is required.", "err"); $("note").focus(); return; }
    const body = { note };
    if (action === "assign") body.unit = $("unit-select").value;
    const r = await api("/api/alerts/" + encodeURIComponent(id) + "/" + action, { method: "POST", body: JSON.stringify(body) });
    if (r.status === 401) return showLogin("Session ended; log in again.");
    if (!r.ok) { setMsg((r.body && r.body.error) || "refused (" + r.status + ")", "err"); return; }
    $("note").value = "";
    setMsg(action + " done" + (r.body.request_id ? " (" + r.body.request_id + ")" : "") + "; state " + r.body.state, "ok");
    renderDetail(true);
  }
  for (const b of document.querySelectorAll("#actions button[data-action]")) b.addEventListener("click", () => act(b.dataset.action));

  function renderHealth() {
    const tb = document.querySelector("#health tbody");
    tb.replaceChildren();
    const devs = S.health.devices || [];
    const counts = { online: 0, offline: 0, fault: 0, unknown: 0 };
    const byId = new Map(devs.map((d) => [d.device, d]));
    for (const d of devs) {
      counts[d.state] = (counts[d.state] || 0) + 1;
      const tr = el("tr", d.state === "fault" || d.state === "offline" ? "bad" : "");
      tr.dataset.device = d.device;
      tr.append(el("td", null, d.device), el("td", null, d.kind));
      const st = el("td"); st.append(el("span", "hs " + d.state, d.state)); tr.append(st);
      tr.append(el("td", "num", d.lost_batches), el("td", "num", d.dead_letters), el("td", null, d.detail || ""));
      tb.append(tr);
    }
    const other = (S.health.dead_letters || {})["(other)"];
    if (other) {
      const tr = el("tr"); tr.append(el("td", null, "(other)"), el("td"), el("td"), el("td"), el("td", "num", other), el("td", null, "not from a site device"));
      tb.append(tr);
    }
    $("health-sum").textContent = counts.online + " online, " + counts.offline + " offline, " + counts.fault + " fault" + (counts.unknown ? ", " + counts.unknown + " unknown" : "");
    // fibre coverage: colour by state, blind segments in red
    S.blind.clearLayers();
    for (const [id, line] of S.fibreLines) {
      const d = byId.get(id);
      const state = d ? d.state : "unknown";
      line.setStyle({ color: STATE_COLOUR[state], dashArray: state === "online" ? null : "6 4" });
      if (d && d.coverage_loss) {
        const c = d.coverage_loss;
        L.polyline(c.lonlat.map(ll), { color: "#c0101a", weight: 7, opacity: 0.9 })
          .bindTooltip(id + " blind: km " + (c.border_from_m / 1000).toFixed(2) + "–" + (c.border_to_m / 1000).toFixed(2) + " since " + utc(c.since))
          .addTo(S.blind);
      }
    }
    const g = S.layers.devices;
    g.clearLayers();
    for (const d of devs) {
      if (d.kind === "fibre" || d.lat === null || d.lon === null) continue;
      const colour = STATE_COLOUR[d.state] || "#888";
      const tip = d.device + " (" + d.kind + "): " + d.state + (d.detail ? " — " + d.detail : "");
      if (d.kind === "thermal") {
        L.circleMarker([d.lat, d.lon], { radius: 6, color: "#111", weight: 1.5, fillColor: colour, fillOpacity: 1 }).bindTooltip(tip).addTo(g);
      } else {
        const box = el("div", "msv", "M"); box.style.background = colour;
        L.marker([d.lat, d.lon], { icon: L.divIcon({ className: "", html: box.outerHTML, iconSize: [16, 16], iconAnchor: [8, 8] }) }).bindTooltip(tip).addTo(g);
      }
    }
  }

  function renderPatrols() {
    const g = S.layers.patrols;
    g.clearLayers();
    for (const p of S.patrols) {
      const team = p.team === "JOINT" ? " joint" : S.site && p.team !== S.site.home ? " other" : "";
      const b = el("div", "patrol" + team + (p.tasked_to ? " tasked" : "") + (p.available ? "" : " unavailable"), p.unit);
      L.marker([p.lat, p.lon], { icon: L.divIcon({ className: "", html: b.outerHTML, iconSize: null, iconAnchor: [20, 8] }), zIndexOffset: 200 })
        .bindTooltip(p.unit + " (" + p.team + ")" + (p.tasked_to ? " tasked to " + p.tasked_to : p.available ? " available" : " unavailable"))
        .addTo(g);
    }
  }

  // ---- boot ------------------------------------------------------------------------------

  initMap();
  api("/api/session").then((r) => (r.ok && r.body && r.body.user ? start(r.body) : showLogin()));
})();
