// The station's web page: the HTTP API seen through a browser. The account's
// credentials stay in this tab (sessionStorage) and go in each request's
// Authorization header; no cookie is set, so no other site can act with them.
"use strict";

const $ = (id) => document.getElementById(id);
const RIGHTS = ["view", "open", "admin"];
let me = null;
let streaming = null;

function token() { return sessionStorage.getItem("intercom-token"); }

async function api(method, path, body) {
  const headers = { "Authorization": "Basic " + token(), "X-Intercom-Page": "1" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { status: response.status, data };
}

function encode(name, password) {
  const bytes = new TextEncoder().encode(name + ":" + password);
  let text = "";
  bytes.forEach((b) => { text += String.fromCharCode(b); });
  return btoa(text);
}

async function logIn(event) {
  event.preventDefault();
  sessionStorage.setItem("intercom-token", encode($("name").value, $("password").value));
  $("password").value = "";
  const { status, data } = await api("GET", "/api/me");
  if (status === 200) {
    start(data);
    return;
  }
  sessionStorage.removeItem("intercom-token");
  $("login-error").textContent = status === 429
    ? "Too many failed logins: try again in " + data.retry_in + " s."
    : status === 401 ? "Wrong name or password." : "The station said " + status + ".";
}

function logOut() {
  sessionStorage.removeItem("intercom-token");
  if (streaming) streaming.abort();
  location.reload();
}

function may(right) { return me && RIGHTS.indexOf(me.rights) >= RIGHTS.indexOf(right); }

function start(account) {
  me = account;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = me.name + " (" + me.rights + ")";
  document.querySelectorAll("[data-right]").forEach((el) => {
    if (el.tagName === "BUTTON") el.disabled = !may(el.dataset.right);
    else el.hidden = !may(el.dataset.right);
  });
  refresh();
  loadEvents();
  loadSnapshot();
  loadRecordings();
  if (may("admin")) loadConfig();
  stream();
}

function show(id, text, good) {
  const el = $(id);
  el.textContent = text;
  el.className = good === undefined ? "" : (good ? "good" : "bad");
}

async function refresh() {
  const { status, data } = await api("GET", "/api/state");
  if (status !== 200) return;
  $("title").textContent = data.station;
  show("registration", data.registration.state + (data.registration.registrar
    ? " at " + data.registration.registrar : ""));
  show("call", data.call.state + (data.call.peer ? " (" + data.call.peer + ")" : ""));
  show("relay", data.relay.energised ? "energised" : "released", !data.relay.energised);
  show("door", data.door_closed === null ? "no contact" : (data.door_closed ? "closed" : "open"));
  show("tamper", data.tamper_open === null ? "no switch" : (data.tamper_open ? "open" : "closed"),
       !data.tamper_open);
  show("alarms", data.alarms.length ? data.alarms.join(", ") : "none", !data.alarms.length);
  show("leds", Object.entries(data.leds).map(([k, v]) => k + " " + v).join(", "));
}

function describe(e) {
  const when = new Date(e.time * 1000).toLocaleTimeString();
  const details = Object.entries(e).filter(([k]) => k !== "event" && k !== "time")
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
  return when + " " + e.event + " " + details;
}

function addEvent(e, newest) {
  const li = document.createElement("li");
  li.textContent = describe(e);
  li.dataset.event = e.event;
  const list = $("events");
  if (newest) list.prepend(li); else list.append(li);
  while (list.children.length > 200) list.lastChild.remove();
}

// A file of the API (a picture, a recording) into an element: fetched with the
// account's credentials, which an <img> or <audio> src alone would not send.
async function loadInto(element, path, name) {
  const response = await fetch(path + encodeURIComponent(name), {
    headers: { "Authorization": "Basic " + token(), "X-Intercom-Page": "1" } });
  if (!response.ok) return false;
  if (element.src) URL.revokeObjectURL(element.src);
  element.src = URL.createObjectURL(await response.blob());
  element.dataset.name = name;
  return true;
}

async function showSnapshot(name, when) {
  if (!await loadInto($("snapshot"), "/api/snapshots/", name)) return;
  $("snapshot-time").textContent = new Date(when * 1000).toLocaleString();
  $("visitor-section").hidden = false;
}

async function loadSnapshot() {
  const { status, data } = await api("GET", "/api/snapshots");
  if (status === 200 && data.length) {
    const last = data[data.length - 1];
    showSnapshot(last.name, last.time);
  }
}

function describeRecording(r) {
  const when = new Date(r.time * 1000).toLocaleString();
  const what = r.what === "message" ? "Message from the visitor at " + r.button
    : "Call" + (r.button && r.button !== "incoming" ? " from " + r.button : " (incoming)");
  return when + ": " + what + " (" + Math.max(1, Math.round(r.bytes / 1024)) + " KB)";
}

async function play(name) {
  const player = $("player");
  if (!await loadInto(player, "/api/recordings/", name)) return;
  player.hidden = false;
  player.play().catch(() => {});       // a browser may want a click of its own first
}

async function loadRecordings() {
  const { status, data } = await api("GET", "/api/recordings");
  if (status !== 200) return;
  const list = $("recordings");
  list.replaceChildren(...data.slice(-20).reverse().map((r) => {
    const li = document.createElement("li");
    li.dataset.name = r.name;
    const button = document.createElement("button");
    button.textContent = "Play";
    button.addEventListener("click", () => play(r.name));
    li.append(describeRecording(r) + " ", button);
    if (may("admin")) {
      const remove = document.createElement("button");
      remove.textContent = "Delete";
      remove.className = "delete";
      remove.addEventListener("click", async () => {
        if (!confirm("Delete this recording for good?")) return;
        const { status } = await api("DELETE", "/api/recordings/" + encodeURIComponent(r.name));
        if (status === 200) loadRecordings();
      });
      li.append(" ", remove);
    }
    return li;
  }));
  $("recordings-section").hidden = data.length === 0;
}

async function loadEvents() {
  const { status, data } = await api("GET", "/api/events?count=20");
  if (status === 200) data.reverse().forEach((e) => addEvent(e, false));
}

async function stream() {
  streaming = new AbortController();
  try {
    const response = await fetch("/api/events/stream", {
      headers: { "Authorization": "Basic " + token(), "X-Intercom-Page": "1" },
      signal: streaming.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.startsWith("data: ")) {
          const e = JSON.parse(block.slice(6));
          addEvent(e, true);
          if (e.event === "snapshot") showSnapshot(e.file, e.time);
          if (e.event === "recording") loadRecordings();
          refresh();
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") return;
  }
  setTimeout(stream, 2000);          // the station restarted, or the network hiccupped
}

async function door() {
  const { status, data } = await api("POST", "/api/door", { action: "open" });
  show("action-result", status === 200 ? "The door opens." : data.error, status === 200);
}

async function hangup() {
  const { status, data } = await api("POST", "/api/call/hangup", {});
  show("action-result", status === 200 ? "Hung up." : data.error, status === 200);
}

async function loadConfig() {
  const { status, data } = await api("GET", "/api/config");
  if (status !== 200) return;
  $("config-path").textContent = data.path;
  $("config").value = data.toml;
}

async function checkConfig(save) {
  const text = $("config").value;
  const { status, data } = save
    ? await api("PUT", "/api/config", { toml: text })
    : await api("POST", "/api/config/validate", { toml: text });
  if (status === 200) {
    show("config-result", save ? "Saved; it applies at the next start." : "The config is good.",
         true);
    return;
  }
  // the station names the line (1-based) its error is about, when it can
  const line = data && data.line ? data.line - 1 : -1;
  const el = $("config-result");
  show("config-result", (line >= 0 ? "line " + (line + 1) + ": " : "") +
       (data ? data.error : "the station said " + status), false);
  el.dataset.key = data && data.key ? data.key : "";
  if (line >= 0) {
    const lines = text.split("\n");
    const from = lines.slice(0, line).join("\n").length + (line ? 1 : 0);
    $("config").focus();
    $("config").setSelectionRange(from, from + lines[line].length);
  }
}

async function doctor() {
  $("doctor").textContent = "checking...";
  const { status, data } = await api("POST", "/api/doctor", {});
  $("doctor").textContent = status === 200 ? data.lines.join("\n") : data.error;
  $("doctor").className = status === 200 && data.ok ? "good" : "bad";
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("open-door").addEventListener("click", door);
  $("hangup").addEventListener("click", hangup);
  $("validate").addEventListener("click", () => checkConfig(false));
  $("save").addEventListener("click", () => checkConfig(true));
  $("run-doctor").addEventListener("click", doctor);
  if (token()) {
    const { status, data } = await api("GET", "/api/me");
    if (status === 200) start(data); else sessionStorage.removeItem("intercom-token");
  }
});
