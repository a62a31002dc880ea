// The join page: a person's browser joins the kit's session as a participant. It speaks the
// kits' signaling protocol (appliance/signaling/messages.py) through the API's proxy:
// hello -> join -> the newcomer offers to everyone already there and answers later joiners.
"use strict";

const params = new URLSearchParams(location.search);
const code = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
// ?codec=VP8 or ?codec=H264 puts that video codec first (the kit may force one too).
const preferredCodec = (params.get("codec") || "").toUpperCase();

const state = {
  pass: null,            // what POST /api/v1/join returned
  ws: null,
  nextId: 1,
  pending: new Map(),    // request id -> {resolve, reject}
  peers: new Map(),      // uid -> {pc, video, descriptionSent, queued}
  participants: new Map(), // uid -> participant (as the server describes it)
  local: null,           // MediaStream
  muted: false,
  videoPaused: false,
  joined: false,
  ended: null,
  chain: Promise.resolve(),
};

const $ = (id) => document.getElementById(id);

function setStatus(text) { $("status").textContent = text; }

function showError(text) { $("error").textContent = text; setStatus("not joined"); }

// --- signaling ---------------------------------------------------------------------------

function send(message) {
  state.ws.send(JSON.stringify(message));
}

function request(message) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    send({ ...message, id });
  });
}

function connect(pass) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${pass.signaling}`);
  state.ws = ws;
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("cannot reach the kit's signaling"));
    ws.onclose = () => {
      for (const { reject: fail } of state.pending.values()) fail(new Error("connection closed"));
      state.pending.clear();
      if (state.joined && !state.ended) end("the connection to the kit closed");
    };
    ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  });
}

function onMessage(message) {
  if (message.id != null && state.pending.has(message.id)) {
    const { resolve, reject } = state.pending.get(message.id);
    state.pending.delete(message.id);
    if (message.type === "error") reject(new Error(`${message.code}: ${message.message}`));
    else resolve(message);
    return;
  }
  switch (message.type) {
    case "signal":  // in order: a candidate must not overtake its description
      state.chain = state.chain.then(() => onSignal(message)).catch((err) => console.warn(err));
      break;
    case "participant-joined":
      state.participants.set(message.participant.uid, message.participant);
      renderParticipants();
      break;  // the newcomer offers to us
    case "participant-left": removePeer(message.participant.uid); break;
    case "participant-updated":
      state.participants.set(message.participant.uid, message.participant);
      renderParticipants();
      break;
    case "switched-to-video": break;
    case "session-ended": end("the call ended"); break;
    case "error": console.warn("server:", message.code, message.message); break;
    default: break;
  }
}

// --- peers -------------------------------------------------------------------------------

function preferCodec(transceiver) {
  if (!preferredCodec || transceiver.receiver.track.kind !== "video") return;
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
  const wanted = codecs.filter((c) => c.mimeType.toUpperCase() === `VIDEO/${preferredCodec}`);
  const rtx = codecs.filter((c) => c.mimeType.toUpperCase() === "VIDEO/RTX");
  if (wanted.length) transceiver.setCodecPreferences([...wanted, ...rtx]);
}

function makePeer(uid) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const peer = { pc, uid, descriptionSent: false, queued: [], stream: new MediaStream() };
  state.peers.set(uid, peer);
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate || !candidate.candidate) return;  // end of candidates: nothing to say
    const payload = {
      candidate: candidate.candidate,
      sdpMid: candidate.sdpMid,
      sdpMLineIndex: candidate.sdpMLineIndex,
    };
    if (peer.descriptionSent) send({ type: "signal", to: uid, candidate: payload });
    else peer.queued.push(payload);
  };
  pc.ontrack = ({ track }) => {
    peer.stream.addTrack(track);
    tileFor(uid).querySelector("video").srcObject = peer.stream;
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") setStatus(`the connection to ${uid} failed`);
  };
  return peer;
}

async function sendDescription(peer) {
  const local = peer.pc.localDescription;
  send({ type: "signal", to: peer.uid, description: { type: local.type, sdp: local.sdp } });
  peer.descriptionSent = true;
  for (const candidate of peer.queued.splice(0)) {
    send({ type: "signal", to: peer.uid, candidate });
  }
}

async function offerTo(uid) {
  const peer = makePeer(uid);
  for (const track of state.local.getTracks()) {
    const transceiver = peer.pc.addTransceiver(track, { direction: "sendrecv" });
    preferCodec(transceiver);
  }
  await peer.pc.setLocalDescription(await peer.pc.createOffer());
  await sendDescription(peer);
}

async function onSignal(message) {
  const uid = message.from;
  let peer = state.peers.get(uid);
  if (message.description) {
    if (!peer) peer = makePeer(uid);
    await peer.pc.setRemoteDescription(message.description);
    if (message.description.type === "offer") {
      for (const transceiver of peer.pc.getTransceivers()) {
        const kind = transceiver.receiver.track.kind;
        const track = state.local.getTracks().find((t) => t.kind === kind);
        if (track && !transceiver.sender.track) {
          await transceiver.sender.replaceTrack(track);
          transceiver.direction = "sendrecv";
          preferCodec(transceiver);
        }
      }
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      await sendDescription(peer);
    }
  }
  if (message.candidate && message.candidate.candidate && peer) {
    await peer.pc.addIceCandidate(message.candidate);
  }
}

function removePeer(uid) {
  const peer = state.peers.get(uid);
  if (peer) peer.pc.close();
  state.peers.delete(uid);
  state.participants.delete(uid);
  const tile = document.querySelector(`[data-uid="${CSS.escape(uid)}"]`);
  if (tile) tile.remove();
  renderParticipants();
}

// --- the page ----------------------------------------------------------------------------

function tileFor(uid) {
  let tile = document.querySelector(`.tile[data-uid="${CSS.escape(uid)}"]`);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.uid = uid;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const label = document.createElement("span");
    label.className = "label";
    tile.append(video, label);
    $("tiles").append(tile);
  }
  const participant = state.participants.get(uid);
  tile.querySelector(".label").textContent = participant ? participant.name : uid;
  return tile;
}

function renderParticipants() {
  const list = $("participants");
  list.replaceChildren();
  for (const p of state.participants.values()) {
    const item = document.createElement("li");
    item.dataset.uid = p.uid;
    item.dataset.muted = String(p.muted);
    item.dataset.videoPaused = String(p.video_paused);
    const name = document.createElement("span");
    name.textContent = p.name;
    item.append(name);
    if (p.muted) item.append(badge("muted"));
    if (p.video_paused) item.append(badge("video off"));
    list.append(item);
    tileFor(p.uid);
  }
}

function badge(text) {
  const span = document.createElement("span");
  span.className = "badge alert";
  span.textContent = text;
  return span;
}

// A browser gives camera and microphone only to secure pages: https, or this machine.
function mediaProblem() {
  if (window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    return null;
  }
  const https = `https://${location.host}${location.pathname}`;
  return "This page came over plain HTTP, and a browser gives the camera and microphone " +
    "only to HTTPS pages. Open " + https + " instead (the kit's REST API needs [api.tls] " +
    "enabled = true; its certificate's SHA-256 is on the kit's screen).";
}

async function join(name) {
  const problem = mediaProblem();
  if (problem) throw new Error(problem);
  state.ended = null;
  state.muted = false;
  state.videoPaused = false;
  $("mute").textContent = "Mute";
  $("mute").classList.remove("on");
  $("camera").textContent = "Stop video";
  setStatus("asking for camera and microphone");
  state.local = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: 640, height: 480 },
  });
  $("self").srcObject = state.local;
  setStatus("joining");
  const response = await fetch("/api/v1/join", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code, name }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  state.pass = body;
  $("title").textContent = `${body.kit.name}`;
  await connect(body);
  await request({ type: "hello", auth_token: body.auth_token, client: "browser" });
  const joined = await request({
    type: "join",
    session_id: body.session_id,
    call_token: body.call_token,
    state: { muted: false, video_paused: false, audio_only: false },
  });
  state.joined = true;
  document.body.dataset.state = "joined";
  $("ended-box").classList.add("hidden");
  $("lobby").classList.add("hidden");
  $("call").classList.remove("hidden");
  setStatus("in the call");
  for (const participant of joined.participants) {
    state.participants.set(participant.uid, participant);
  }
  renderParticipants();
  for (const participant of joined.participants) await offerTo(participant.uid);
}

function end(reason) {
  state.ended = reason;
  state.joined = false;
  for (const peer of state.peers.values()) peer.pc.close();
  state.peers.clear();
  state.participants.clear();
  if (state.local) for (const track of state.local.getTracks()) track.stop();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.close();
  setStatus(reason);
  // The "call ended" state, with the way back: the same link joins again while it is valid.
  $("tiles").replaceChildren();
  $("participants").replaceChildren();
  $("call").classList.add("hidden");
  $("lobby").classList.remove("hidden");
  $("ended").textContent = reason.charAt(0).toUpperCase() + reason.slice(1) + ".";
  $("ended-box").classList.remove("hidden");
  $("join").textContent = "Join again";
  $("join").disabled = Boolean(mediaProblem());
  document.body.dataset.state = "ended";
}

if (mediaProblem()) {
  showError(mediaProblem());
  $("join").disabled = true;
  setStatus("needs HTTPS");
}

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("join").disabled = true;
  $("error").textContent = "";
  join($("name").value.trim() || "Guest").catch((err) => {
    $("join").disabled = false;
    showError(err.message || String(err));
  });
});

$("mute").addEventListener("click", () => {
  state.muted = !state.muted;
  for (const track of state.local.getAudioTracks()) track.enabled = !state.muted;
  $("mute").textContent = state.muted ? "Unmute" : "Mute";
  $("mute").classList.toggle("on", state.muted);
  send({ type: "state", state: { muted: state.muted } });
});

$("camera").addEventListener("click", () => {
  state.videoPaused = !state.videoPaused;
  for (const track of state.local.getVideoTracks()) track.enabled = !state.videoPaused;
  $("camera").textContent = state.videoPaused ? "Start video" : "Stop video";
  send({ type: "state", state: { video_paused: state.videoPaused } });
});

$("leave").addEventListener("click", () => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) send({ type: "leave" });
  end("you left the call");
});

// What tests and diagnostics read: per peer, what arrives and what was decoded.
window.callbox = {
  state,
  async stats() {
    const out = {};
    for (const [uid, peer] of state.peers) {
      const report = await peer.pc.getStats();
      const entry = { connection: peer.pc.connectionState, video: null, audio: null, sent: null };
      const codecs = new Map();
      report.forEach((s) => { if (s.type === "codec") codecs.set(s.id, s.mimeType); });
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          entry.sent = { codec: codecs.get(s.codecId) || null, framesEncoded: s.framesEncoded || 0 };
        }
        if (s.type !== "inbound-rtp") return;
        const common = { packetsReceived: s.packetsReceived, codec: codecs.get(s.codecId) || null };
        if (s.kind === "video") {
          entry.video = { ...common, framesDecoded: s.framesDecoded || 0,
            frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0 };
        } else if (s.kind === "audio") {
          entry.audio = { ...common, totalAudioEnergy: s.totalAudioEnergy || 0,
            audioLevel: s.audioLevel || 0, totalSamplesReceived: s.totalSamplesReceived || 0 };
        }
      });
      out[uid] = entry;
    }
    return out;
  },
  // The mean colour of the upper part of a participant's video, as shown on the page.
  sampleColour(uid) {
    const video = document.querySelector(`.tile[data-uid="${CSS.escape(uid)}"] video`);
    if (!video || !video.videoWidth) return null;
    const canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 48;
    const context = canvas.getContext("2d");
    context.drawImage(video, 0, 0, 64, 48);
    const pixels = context.getImageData(0, 0, 64, 16).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < pixels.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += pixels[i + c];
    const count = pixels.length / 4;
    return sum.map((v) => Math.round(v / count));
  },
};
