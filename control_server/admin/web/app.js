// The dashboard: loads the API's lists once, then keeps them current from the event stream.
"use strict";

const state = {me: null, online: new Map(), sessions: new Map(), history: [], status: null};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // Changes from the page carry the session's CSRF token; the cookie alone is not enough.
  if (method !== "GET" && state.me && state.me.csrf) headers["X-CSRF-Token"] = state.me.csrf;
  const response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function notice(text, isError = false) {
  const node = document.getElementById("notice");
  node.textContent = text;
  node.className = isError ? "notice error" : "notice";
  node.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { node.hidden = true; }, 5000);
}

const time = (stamp) => stamp ? new Date(stamp * 1000).toLocaleTimeString() : "";
const when = (stamp) => stamp ? new Date(stamp * 1000).toLocaleString() : "never";

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 0)} s`;
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return `${d} d ${h % 24} h`;
  if (h) return `${h} h ${m % 60} min`;
  return `${m} min ${Math.floor(seconds % 60)} s`;
}

function percent(progress) {
  if (!progress) return null;
  if (progress.phase === "done") return 100;
  if (progress.bytes_total) return Math.min(100, 100 * progress.bytes / progress.bytes_total);
  if (progress.records_total) return Math.min(100, 100 * progress.records / progress.records_total);
  return null;
}

// -- rendering ------------------------------------------------------------------------------------

function renderCounts() {
  document.getElementById("count-online").textContent = state.online.size;
  document.getElementById("count-sessions").textContent = state.sessions.size;
  if (state.status) {
    document.getElementById("count-users").textContent = state.status.counts.users;
    document.getElementById("count-devices").textContent = state.status.counts.devices;
  }
}

function renderOnline() {
  const body = document.querySelector("#online-table tbody");
  const now = Date.now() / 1000;
  const rows = [...state.online.values()].sort((a, b) => `${a.user}/${a.device}`.localeCompare(`${b.user}/${b.device}`));
  body.replaceChildren(...rows.map((b) => el("tr", {"data-key": `${b.user}/${b.device}`},
    el("td", {}, el("strong", {}, `${b.user}/${b.device}`)),
    el("td", {class: "mono"}, b.address),
    el("td", {}, el("span", {class: "tag"}, b.transport)),
    el("td", {}, time(b.registered_at)),
    el("td", {class: "countdown"}, `${Math.max(0, Math.round(b.expires_at - now))} s`),
    el("td", {class: "muted"}, b.user_agent || "—"),
  )));
  document.getElementById("online-empty").hidden = rows.length > 0;
  renderCounts();
}

function progressCell(session) {
  const p = session.progress || {};
  const value = percent(p);
  const fill = el("div", {class: "fill"});
  const bar = el("div", {class: value === null ? "bar indeterminate" : "bar", "data-call-id": session.call_id,
                         role: "progressbar"}, fill);
  if (value !== null) {
    fill.style.width = `${value.toFixed(1)}%`;
    bar.setAttribute("aria-valuenow", value.toFixed(0));
  }
  const detail = [];
  if (p.bytes !== undefined) detail.push(p.bytes_total ? `${bytes(p.bytes)} of ${bytes(p.bytes_total)}` : bytes(p.bytes));
  if (p.records) detail.push(p.records_total ? `${p.records}/${p.records_total} records` : `${p.records} records`);
  return el("td", {class: "wide"}, bar, el("div", {class: "small muted"}, detail.join(" · ") || "waiting for a report"));
}

function renderSessions() {
  const body = document.querySelector("#sessions-table tbody");
  const rows = [...state.sessions.values()].sort((a, b) => a.started_at - b.started_at);
  body.replaceChildren(...rows.map((s) => el("tr", {"data-call-id": s.call_id},
    el("td", {}, el("strong", {}, s.caller), " → ", el("strong", {}, s.callee)),
    el("td", {}, [s.data_type, s.dataset].filter(Boolean).join(" · ") || "—", el("div", {class: "small muted"}, s.protocol || "")),
    el("td", {}, el("span", {class: `tag phase-${(s.progress && s.progress.phase) || s.state}`}, (s.progress && s.progress.phase) || s.state)),
    progressCell(s),
    el("td", {}, s.rate ? `${bytes(s.rate)}/s` : "—"),
    el("td", {}, time(s.started_at)),
  )));
  document.getElementById("sessions-empty").hidden = rows.length > 0;
  renderCounts();
}

function renderHistory() {
  const body = document.querySelector("#history-table tbody");
  body.replaceChildren(...state.history.slice(0, 20).map((s) => el("tr", {"data-call-id": s.call_id},
    el("td", {}, el("strong", {}, s.caller), " → ", el("strong", {}, s.callee)),
    el("td", {}, [s.data_type, s.dataset].filter(Boolean).join(" · ") || "—"),
    el("td", {}, el("span", {class: s.state === "ended" ? "tag ok" : "tag bad"}, s.reason || s.state)),
    el("td", {}, s.status ?? ""),
    el("td", {}, duration(s.duration)),
    el("td", {}, s.started_by === "daemon" ? "daemon (live sync)" : "script"),
    el("td", {}, time(s.ended_at)),
  )));
  document.getElementById("history-empty").hidden = state.history.length > 0;
}

function actionButton(label, handler, danger = false) {
  const button = el("button", {class: danger ? "small danger" : "small", type: "button"}, label);
  button.addEventListener("click", async () => {
    try { await handler(); } catch (error) { notice(error.message, true); }
  });
  return button;
}

async function loadUsers() {
  const users = await api("GET", "/api/users");
  const body = document.querySelector("#users-table tbody");
  body.replaceChildren(...users.map((u) => el("tr", {"data-user": u.name},
    el("td", {}, el("strong", {}, u.name)),
    el("td", {}, u.devices),
    el("td", {}, el("span", {class: u.disabled ? "tag bad" : "tag ok"}, u.disabled ? "disabled" : "active")),
    el("td", {class: "admin-only actions"},
      actionButton(u.disabled ? "Enable" : "Disable", async () => {
        await api("PATCH", `/api/users/${encodeURIComponent(u.name)}`, {disabled: !u.disabled});
        notice(`${u.disabled ? "enabled" : "disabled"} ${u.name}`);
        await refreshDirectory();
      }),
      actionButton("Reset password", async () => {
        const password = window.prompt(`New password for ${u.name}`);
        if (!password) return;
        const answer = await api("POST", `/api/users/${encodeURIComponent(u.name)}/password`, {password});
        notice(answer.message);
      }),
      actionButton("Delete", async () => {
        if (!window.confirm(`Delete user ${u.name} with their devices and shares?`)) return;
        const answer = await api("DELETE", `/api/users/${encodeURIComponent(u.name)}`);
        notice(answer.message);
        await refreshDirectory();
      }, true)),
  )));
}

async function loadDevices() {
  const devices = await api("GET", "/api/devices");
  const body = document.querySelector("#devices-table tbody");
  body.replaceChildren(...devices.map((d) => el("tr", {"data-key": `${d.user}/${d.device}`},
    el("td", {}, el("strong", {}, `${d.user}/${d.device}`)),
    el("td", {}, el("span", {class: d.online ? "tag ok" : "tag"}, d.online ? "online" : "offline"),
      d.disabled ? el("span", {class: "tag bad"}, "disabled") : null),
    el("td", {}, when(d.last_seen)),
    el("td", {class: "admin-only actions"},
      actionButton(d.disabled ? "Enable" : "Disable", async () => {
        const path = `/api/devices/${encodeURIComponent(d.user)}/${encodeURIComponent(d.device)}`;
        const answer = await api("PATCH", path, {disabled: !d.disabled});
        notice(answer.message);
        await refreshDirectory();
      }),
      actionButton("Delete", async () => {
        if (!window.confirm(`Delete device ${d.user}/${d.device}?`)) return;
        const answer = await api("DELETE", `/api/devices/${encodeURIComponent(d.user)}/${encodeURIComponent(d.device)}`);
        notice(answer.message);
        await refreshDirectory();
      }, true)),
  )));
}

async function loadStatus() {
  state.status = await api("GET", "/api/status");
  document.getElementById("uptime").textContent = duration(state.status.uptime);
  renderCounts();
}

async function refreshDirectory() {
  await Promise.all([loadUsers(), loadDevices(), loadStatus()]);
}

async function loadLive() {
  const [online, sessions, history] = await Promise.all([
    api("GET", "/api/devices?online=1"), api("GET", "/api/sessions"), api("GET", "/api/sessions/history?limit=20"),
  ]);
  state.online = new Map(online.map((b) => [`${b.user}/${b.device}`, b]));
  state.sessions = new Map(sessions.map((s) => [s.call_id, s]));
  state.history = history.sessions;
  renderOnline();
  renderSessions();
  renderHistory();
}

// -- live updates ---------------------------------------------------------------------------------

function listen() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/events");
  stream.addEventListener("open", () => {
    live.className = "live on";
    loadLive().catch((error) => notice(error.message, true));  // catch up on what we missed
  });
  stream.addEventListener("error", () => { live.className = "live off"; });
  stream.addEventListener("device.online", (e) => {
    const b = JSON.parse(e.data);
    state.online.set(`${b.user}/${b.device}`, b);
    renderOnline();
    loadDevices().catch(() => {});
  });
  stream.addEventListener("device.offline", (e) => {
    const b = JSON.parse(e.data);
    state.online.delete(`${b.user}/${b.device}`);
    renderOnline();
    loadDevices().catch(() => {});
  });
  const update = (e) => {
    const s = JSON.parse(e.data);
    state.sessions.set(s.call_id, s);
    renderSessions();
  };
  stream.addEventListener("session.started", update);
  stream.addEventListener("session.progress", update);
  stream.addEventListener("session.ended", (e) => {
    const s = JSON.parse(e.data);
    state.sessions.delete(s.call_id);
    state.history = [s, ...state.history.filter((h) => h.call_id !== s.call_id)];
    renderSessions();
    renderHistory();
  });
}

// -- forms ----------------------------------------------------------------------------------------

function form(id, submit) {
  document.getElementById(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await submit(event.target);
      notice(answer.message);
      event.target.reset();
      await refreshDirectory();
    } catch (error) {
      notice(error.message, true);
    }
  });
}

async function main() {
  state.me = await api("GET", "/api/me");
  document.getElementById("me").textContent = `${state.me.name} · ${state.me.role}`;
  if (state.me.role !== "admin") document.body.classList.add("read-only");
  document.getElementById("logout").addEventListener("click", async () => {
    await api("POST", "/api/logout").catch(() => {});
    window.location.assign("/login");
  });
  form("add-user-form", (f) => api("POST", "/api/users", {name: f.elements.namedItem("name").value, password: f.elements.namedItem("password").value}));
  form("add-device-form", (f) => api("POST", "/api/devices", {user: f.elements.namedItem("user").value, device: f.elements.namedItem("device").value}));
  await Promise.all([loadLive(), refreshDirectory()]);
  listen();
  // Countdowns tick here; re-registrations are not events, so the list is re-read now and then.
  setInterval(renderOnline, 1000);
  setInterval(() => { loadLive().catch(() => {}); loadStatus().catch(() => {}); }, 15000);
}

main().catch((error) => notice(error.message, true));
