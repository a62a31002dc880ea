// The control page: the kit's screen, its call, ringing, settings, call log and recordings,
// all through the REST API with the bearer token (kept in this browser's localStorage).
"use strict";

const TOKEN_KEY = "callbox.token";
const $ = (id) => document.getElementById(id);
const view = { session: null, busy: false, uid: null, kits: null, lan: [], kitsTimer: null };
let events = null;

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : "http";
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { showLogin("The token was not accepted."); throw new ApiError(401); }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- login -------------------------------------------------------------------------------

function showLogin(message) {
  if (events) { events.close(); events = null; }
  $("app").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(TOKEN_KEY, $("token").value.trim());
  start();
});

async function start() {
  if (!token()) { showLogin(); return; }
  try {
    await refresh();
  } catch (err) {
    // The app is not shown yet: say what went wrong on the prompt, and keep the token in
    // its field so that Open tries again.
    if (err.status !== 401) {
      showLogin(`The kit did not answer: ${err.message}`);
      $("token").value = token();
    }
    return;
  }
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  subscribe();
  startScreen();
  loadSettings().catch(() => {});
  loadCallLog().catch(() => {});
  loadRecordings().catch(() => {});
  loadKits();
}

// --- the session -------------------------------------------------------------------------

async function refresh() {
  const [health, session] = await Promise.all([
    fetch("/api/v1/health").then((r) => r.json()),
    api("GET", "/session"),
  ]);
  $("kit-name").textContent = health.kit.name;
  view.uid = health.kit.uid;
  render(session);
}

function render(session) {
  view.session = session;
  const active = session.state === "active";
  const local = session.local;
  $("state").textContent = session.state + (session.session_id ? ` · ${session.session_id}` : "");
  document.body.dataset.state = session.state;
  for (const id of ["mute", "pause", "switch-camera", "record", "pip", "end",
                    "audio-mode", "display-mode"]) {
    $(id).disabled = !active || view.busy;
  }
  $("end").disabled = session.state === "idle" || view.busy;
  // A meeting link: to this call, or (idle) to a new one the kit starts when it is opened.
  $("invite").disabled = view.busy;
  $("to-video").disabled = !active || !local || !local.audio_only || view.busy;
  $("start").disabled = session.state !== "idle" || view.busy;
  renderKits();
  if (local) {
    toggle("mute", local.audio_muted, "Unmute", "Mute");
    toggle("pause", local.video_paused, "Start video", "Stop video");
    toggle("record", local.recording, "Stop recording", "Record");
    toggle("pip", local.pip, "Leave picture in picture", "Picture in picture");
    $("display-mode").value = local.display_mode;
  } else {
    toggle("mute", false, "Unmute", "Mute");
  }
  const modes = $("audio-mode");
  modes.replaceChildren(...session.audio_modes.map((mode) => new Option(mode, mode)));
  if (session.audio_mode) modes.value = session.audio_mode;

  const list = $("participants");
  list.replaceChildren();
  for (const user of session.participants) {
    const item = document.createElement("li");
    item.dataset.uid = user.uid;
    const name = document.createElement("span");
    name.textContent = user.name;
    item.append(name);
    if (user.audio_muted) item.append(badge("muted"));
    if (user.video_paused) item.append(badge("video off"));
    if (user.audio_only) item.append(badge("audio only"));
    list.append(item);
  }
  if (!session.participants.length) list.append(hint("Nobody: the kit is not in a call."));

  const call = session.call;
  const ringing = session.state === "ringing" && call && call.status === "initiated";
  const incoming = ringing && call.receiver.uid === view.uid;
  $("ringing").classList.toggle("hidden", !ringing);
  if (ringing) {
    $("ringing-title").textContent = incoming
      ? `Incoming ${call.call_type} call from ${call.initiator.name}`
      : `Calling ${call.receiver.name}…`;
    $("accept").classList.toggle("hidden", !incoming);
    $("reject").classList.toggle("hidden", !incoming);
    $("cancel").classList.toggle("hidden", incoming);
  }
}

function toggle(id, on, onText, offText) {
  $(id).classList.toggle("on", on);
  $(id).textContent = on ? onText : offText;
  $(id).dataset.on = String(on);
}

function badge(text) {
  const span = document.createElement("span");
  span.className = "badge alert";
  span.textContent = text;
  return span;
}

function hint(text) {
  const item = document.createElement("li");
  item.className = "hint";
  item.textContent = text;
  return item;
}

async function act(method, path, body) {
  view.busy = true;
  if (view.session) render(view.session);
  $("call-error").textContent = "";
  try {
    const result = await api(method, path, body);
    if (result && result.state) render(result);
    else await refresh();
    return result;
  } catch (err) {
    $("call-error").textContent = err.message;
    return null;
  } finally {
    view.busy = false;
    if (view.session) render(view.session);
  }
}

const local = () => (view.session && view.session.local) || {};
$("mute").addEventListener("click", () =>
  act("POST", "/session/mute-audio", { muted: !local().audio_muted }));
$("pause").addEventListener("click", () =>
  act("POST", "/session/pause-video", { paused: !local().video_paused }));
$("switch-camera").addEventListener("click", () => act("POST", "/session/switch-camera"));
$("record").addEventListener("click", async () => {
  await act("POST", "/session/recording", { recording: !local().recording });
  loadRecordings().catch(() => {});
});
$("pip").addEventListener("click", () => act("POST", "/session/pip", { enabled: !local().pip }));
$("to-video").addEventListener("click", () => act("POST", "/session/switch-to-video"));
$("audio-mode").addEventListener("change", (event) =>
  act("POST", "/session/audio-mode", { mode: event.target.value }));
$("display-mode").addEventListener("change", (event) =>
  act("POST", "/display/mode", { mode: event.target.value }));
$("end").addEventListener("click", () => act("DELETE", "/session"));
$("start-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const sessionId = $("session-id").value.trim();
  act("PUT", "/session", sessionId ? { session_id: sessionId } : {});
});
$("ring").addEventListener("click", () => {
  const receiver = $("receiver").value.trim();
  if (receiver) act("POST", "/calls", { receiver, type: "video" });
});
$("accept").addEventListener("click", () =>
  act("POST", `/calls/${encodeURIComponent(view.session.call.session_id)}/accept`));
$("reject").addEventListener("click", () =>
  act("POST", `/calls/${encodeURIComponent(view.session.call.session_id)}/reject`));
$("cancel").addEventListener("click", () =>
  act("POST", `/calls/${encodeURIComponent(view.session.call.session_id)}/cancel`));
$("invite").addEventListener("click", async () => {
  try {
    const invite = await api("POST", "/invites", { ttl: 3600, uses: 10 });
    $("invite-link").textContent = new URL(invite.url, location.href).href;
  } catch (err) {
    $("call-error").textContent = err.message;
  }
});

// --- the kits the session server knows ----------------------------------------------------

async function loadKits() {
  clearTimeout(view.kitsTimer);
  try {
    view.kits = (await api("GET", "/kits")).kits;
    $("kits-error").textContent = "";
  } catch (err) {
    view.kits = null;
    $("kits-error").textContent = err.message;
  }
  try {
    // Kits announced on the LAN (mDNS): what they say of themselves, not verified.
    view.lan = (await api("GET", "/discovery/kits")).kits;
  } catch (err) {
    view.lan = [];
  }
  renderKits();
  await loadJoinRequests();
  if (!$("app").classList.contains("hidden")) view.kitsTimer = setTimeout(loadKits, 10000);
}

// --- kits asking to join this kit's session server ----------------------------------------

async function loadJoinRequests() {
  let listed;
  try {
    listed = await api("GET", "/join-requests");
    $("joins-error").textContent = "";
  } catch (err) {
    $("joins-error").textContent = err.message;
    return;
  }
  // Only a kit that hosts its session server decides who joins it.
  $("joins").classList.toggle("hidden", !listed.hosted);
  $("join-requests").replaceChildren(...listed.requests.map(joinRequestItem));
  if (!listed.requests.length) $("join-requests").append(hint("Nobody is asking to join."));
}

function joinRequestItem(request) {
  const item = document.createElement("li");
  item.dataset.id = String(request.id);
  const who = document.createElement("span");
  who.className = "grow";
  who.textContent = `${request.name} (${request.uid}) from ${request.address}`;
  const print = document.createElement("code");
  print.className = "fingerprint";
  // Compare with the fingerprint the asking kit shows on its screen before approving.
  print.textContent = request.fingerprint || "no fingerprint given";
  const approve = document.createElement("button");
  approve.type = "button";
  approve.className = "ok";
  approve.textContent = "Approve";
  const reject = document.createElement("button");
  reject.type = "button";
  reject.textContent = "Reject";
  for (const [button, verdict] of [[approve, "approve"], [reject, "reject"]]) {
    button.addEventListener("click", async () => {
      approve.disabled = reject.disabled = true;
      try {
        await api("POST", `/join-requests/${request.id}/${verdict}`);
      } catch (err) {
        $("joins-error").textContent = err.message;
      }
      await loadKits();  // an approved kit is a user now: the kit list has it
    });
  }
  item.append(who, print, approve, reject);
  return item;
}

function renderKits() {
  const list = $("kits");
  if (!view.kits) { list.replaceChildren(); return; }
  const idle = view.session && view.session.state === "idle";
  const onLan = new Set(view.lan.map((kit) => kit.uid));
  list.replaceChildren(...view.kits.map((kit) => {
    const item = document.createElement("li");
    item.dataset.uid = kit.uid;
    item.dataset.online = String(kit.online);
    const name = document.createElement("span");
    name.className = "grow";
    name.textContent = kit.name;
    name.title = kit.uid;
    const state = document.createElement("span");
    state.className = kit.online ? "badge online" : "badge";
    state.textContent = kit.online ? "online" : "offline";
    const call = document.createElement("button");
    call.type = "button";
    call.className = "ok";
    call.textContent = "Call";
    call.disabled = !kit.online || !idle || view.busy;
    call.title = kit.online ? `Ring ${kit.name}` : `${kit.name} is offline`;
    call.addEventListener("click", () => act("POST", "/calls", { receiver: kit.uid, type: "video" }));
    item.append(name, state);
    if (onLan.has(kit.uid)) {
      item.dataset.lan = "true";
      item.append(plainBadge("on the LAN"));
    }
    item.append(call);
    return item;
  }));
  // Found on the LAN but unknown to this kit's session server: they cannot be rung from
  // here (another server), but their own page can be opened.
  const known = new Set(view.kits.map((kit) => kit.uid));
  for (const kit of view.lan.filter((k) => !known.has(k.uid))) {
    const item = document.createElement("li");
    item.dataset.uid = kit.uid;
    item.dataset.lan = "true";
    const name = document.createElement("span");
    name.className = "grow";
    name.textContent = kit.name;
    name.title = `${kit.uid}: announced on the LAN, not on this session server`;
    const open = document.createElement("a");
    open.href = kit.api;  // an http(s) URL: the kit checks every announcement
    open.rel = "noopener noreferrer";
    open.target = "_blank";
    open.textContent = "Open";
    item.append(name, plainBadge("on the LAN"), open);
    list.append(item);
  }
  if (!list.children.length) list.append(hint("No other kits on the session server yet."));
}

// A plain badge; badge() above is an alert (muted, video off). Both were once named
// badge, and the later one silently replaced the alert everywhere.
function plainBadge(text) {
  const span = document.createElement("span");
  span.className = "badge";
  span.textContent = text;
  return span;
}

// --- live events -------------------------------------------------------------------------

function subscribe() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // A browser's WebSocket cannot send headers: the token travels as a subprotocol.
  events = new WebSocket(`${scheme}//${location.host}/api/v1/events`,
                         ["callbox", `bearer.${token()}`]);
  let pending = null;
  events.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "onCallEnded") {
      loadCallLog().catch(() => {});
      loadRecordings().catch(() => {});
    }
    // Many events come in bursts: fetch the whole state once per burst.
    if (!pending) pending = setTimeout(() => {
      pending = null;
      api("GET", "/session").then(render).catch(() => {});
    }, 50);
  };
  events.onclose = () => {
    if (!$("app").classList.contains("hidden")) setTimeout(subscribe, 2000);
  };
}

// --- the screen --------------------------------------------------------------------------

async function startScreen() {
  // MJPEG through fetch, so the request can carry the token; each part becomes an image.
  const img = $("screen");
  try {
    const response = await fetch("/api/v1/display.mjpeg?fps=5", {
      headers: { Authorization: `Bearer ${token()}` },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      $("screen-note").textContent = body && body.error ? body.error.message : "no screen";
      img.classList.add("hidden");
      return;
    }
    const reader = response.body.getReader();
    let buffer = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = concat(buffer, value);
      for (;;) {
        const part = nextPart(buffer);
        if (!part) break;
        buffer = buffer.slice(part.end);
        const url = URL.createObjectURL(new Blob([part.jpeg], { type: "image/jpeg" }));
        img.classList.remove("hidden");
        const old = img.src;
        img.src = url;
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      }
    }
  } catch (err) {
    $("screen-note").textContent = `screen: ${err.message}`;
  }
  setTimeout(startScreen, 2000);
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const decoder = new TextDecoder();
function nextPart(buffer) {
  // Headers end with a blank line; Content-Length says how long the JPEG is.
  const text = decoder.decode(buffer.subarray(0, Math.min(buffer.length, 512)));
  const headerEnd = text.indexOf("\r\n\r\n");
  if (headerEnd < 0) return null;
  const match = /Content-Length:\s*(\d+)/i.exec(text.slice(0, headerEnd));
  if (!match) return null;
  const start = new TextEncoder().encode(text.slice(0, headerEnd + 4)).length;
  const end = start + Number(match[1]);
  if (buffer.length < end + 2) return null;
  return { jpeg: buffer.slice(start, end), end: end + 2 };
}

// --- settings, call log, recordings ------------------------------------------------------

async function loadSettings() {
  const { config, pending, rest_keys: restKeys, file_only: fileOnly } = await api("GET", "/config");
  const within = (name, keys) => keys.some((key) => name === key || name.startsWith(key + "."));
  for (const field of $("settings").elements) {
    if (!field.name) continue;
    const value = field.name.split(".").reduce((node, key) => (node ? node[key] : undefined), config);
    field.value = value === undefined || value === null ? "" : String(value);
    // What only the config file may set is shown, not offered: PATCH would refuse it.
    const fileOnlyField = !within(field.name, restKeys) || within(field.name, fileOnly);
    field.readOnly = fileOnlyField;
    if (field.tagName === "SELECT") field.disabled = fileOnlyField;
    field.dataset.fileOnly = String(fileOnlyField);
    if (fileOnlyField) field.title = "set in the config file";
  }
  showPending(pending);
}

function showPending(pending) {
  $("settings-note").textContent = pending.length
    ? "Waiting to apply: " + pending.map((c) => `${c.field} (${c.applies})`).join(", ")
    : "";
}

$("settings").addEventListener("submit", async (event) => {
  event.preventDefault();
  const patch = {};
  for (const field of event.target.elements) {
    if (!field.name || field.dataset.fileOnly !== "false") continue;
    let value = field.value;
    if (field.type === "number") value = Number(value);
    if (value === "true" || value === "false") value = value === "true";
    const keys = field.name.split(".");
    let node = patch;
    for (const key of keys.slice(0, -1)) node = node[key] = node[key] || {};
    node[keys[keys.length - 1]] = value;
  }
  $("settings-error").textContent = "";
  try {
    const result = await api("PATCH", "/config", patch);
    showPending(result.pending);
    $("kit-name").textContent = result.config.kit.name;
  } catch (err) {
    $("settings-error").textContent = err.message;
  }
});

async function loadCallLog() {
  const { calls } = await api("GET", "/call-log?limit=20");
  $("call-log").replaceChildren(...calls.map((call) => {
    const row = document.createElement("tr");
    const when = new Date(call.initiated_at * 1000).toLocaleString();
    for (const text of [when, `${call.initiator.name} → ${call.receiver.name}`,
                        call.call_type, call.status]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

async function loadRecordings() {
  const { recordings } = await api("GET", "/recordings");
  const list = $("recordings");
  list.replaceChildren();
  for (const recording of recordings) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${recording.name} (${Math.round(recording.size / 1024)} KiB)`;
    const download = document.createElement("button");
    download.textContent = "Download";
    download.addEventListener("click", () => downloadRecording(recording));
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.className = "danger";
    remove.disabled = recording.recording;
    remove.addEventListener("click", async () => {
      await api("DELETE", `/recordings/${encodeURIComponent(recording.name)}`).catch(() => {});
      loadRecordings().catch(() => {});
    });
    item.append(name, download, remove);
    list.append(item);
  }
  if (!recordings.length) list.append(hint("No recordings."));
}

async function downloadRecording(recording) {
  const response = await fetch(recording.url, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = recording.name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

start();
