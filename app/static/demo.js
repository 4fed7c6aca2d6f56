// Hearth demo: three modes on the hearth-client package, which does all the talking to Hearth
// (identities, reconnects with resume, presence, pairing, matchmaking). This file is the UI.
// - Pairing: a display and a controller pair by code, then talk over a WebRTC DataChannel that the
//   package's `signal` set up.
// - Room: several people, presence, a chat whose messages arrive once and in order across reconnects.
// - Match: a queue, a 1:1 match, its LiveKit room and token.
// The page talks to the Hearth server it came from, or to the one named by `?api=` (another origin).
import { Hearth } from "/v1/hearth-client.js";

const CODE_RE = /^[2-9A-HJKMNP-Z]{6}$/;
const $ = (id) => document.getElementById(id);
const API = apiBase();

// What the header says for each state of the package's session (its `state` events).
const CONN_TEXT = {
  idle: "not connected",
  waiting: "waiting",
  connecting: "connecting…",
  open: "connected",
  reconnecting: "connection lost · reconnecting…",
  closed: "disconnected",
};

const ui = {
  mode: null, // "display" | "controller" | "room" | "match"
  hearth: null, // the Hearth client of this tab's identity
  name: null, // the identity's display name
  session: null, // the package's Session now shown
  display: null, // a display waiting for its controller
  peerId: null, // pairing: the other side's participant id
  peerSeen: false,
  match: null,
  pc: null,
  dc: null,
  remoteIce: [],
  signals: Promise.resolve(),
  opens: 0,
};

function apiBase() {
  const given = new URLSearchParams(location.search).get("api");
  if (!given) return location.origin;
  try {
    const url = new URL(given);
    if (url.protocol === "http:" || url.protocol === "https:") return url.origin;
  } catch {
    // not a URL: fall through
  }
  console.warn("ignored ?api= (not an http(s) URL):", given);
  return location.origin;
}

// ---- small helpers ---------------------------------------------------------------------------

function setStatus(text, tone) {
  const el = $("status");
  el.hidden = !text;
  el.textContent = text || "";
  el.dataset.tone = tone || "";
}

function setConn(state, text) {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = text || CONN_TEXT[state] || state;
}

function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}

function fail(what, err) {
  console.error(what, err);
  showError(`${what}: ${err && err.message ? err.message : err}`);
}

function stamp(at) {
  const t = document.createElement("time");
  t.textContent = (at ? new Date(at) : new Date()).toLocaleTimeString();
  return t;
}

function choose(mode) {
  ui.mode = mode;
  for (const view of ["home", "display", "controller", "room", "match"]) {
    $(`view-${view}`).hidden = view !== (mode || "home");
  }
  $("session").hidden = true;
  const badge = $("role-badge");
  badge.textContent = mode || "";
  badge.hidden = !mode;
  document.title = mode ? `Hearth demo · ${mode}` : "Hearth demo";
  setStatus("");
  showError("");
}

/** A client with a new identity named `name` (kept for the tab while the name stays the same). */
async function identity(name) {
  if (ui.hearth && ui.name === name) return ui.hearth;
  const hearth = new Hearth({ url: API });
  await hearth.createIdentity({ displayName: name });
  ui.hearth = hearth;
  ui.name = name;
  return hearth;
}

/** Shows `session` in the header: its state as the package reports it, and why it closed. */
function follow(session) {
  ui.session = session;
  setConn(session.state);
  session.on("state", (state) => {
    if (ui.session !== session) return;
    setConn(state);
    if (state === "open") showError("");
  });
  session.on("closed", ({ reason }) => {
    if (ui.session === session) setConn("closed", reason ? `disconnected · ${reason}` : "disconnected");
  });
}

function renderPresence(list, entries, you) {
  list.replaceChildren();
  const rank = (p) => ["display", "controller"].indexOf(p.role);
  const people = [...entries].sort((a, b) => rank(a) - rank(b));
  for (const p of people) {
    const li = document.createElement("li");
    li.dataset.participant = p.participant_id;
    li.dataset.role = p.role || "";
    if (p.role && p.role !== "member") {
      const role = document.createElement("span");
      role.className = "role";
      role.textContent = p.role;
      li.append(role);
    }
    const name = p.display_name || "";
    if (name && name.toLowerCase() !== (p.role || "").toLowerCase()) li.append(span("name", name));
    if (p.participant_id === you) {
      li.classList.add("you");
      li.append(span("muted", "(you)"));
    }
    list.append(li);
  }
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

function appendLine(list, className, text, at) {
  list.querySelectorAll(".empty").forEach((el) => el.remove());
  const li = document.createElement("li");
  li.className = className;
  li.append(stamp(at), document.createTextNode(text));
  list.append(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

// ---- pairing: the display ----------------------------------------------------------------------

async function startDisplay() {
  await leaveCurrent();
  choose("display");
  $("display-waiting").hidden = false;
  $("display-paired").hidden = true;
  $("new-code-btn").hidden = true;
  $("qr").hidden = true;
  $("code").textContent = "······";
  $("code-expiry").textContent = "";
  $("received").replaceChildren(emptyLine());
  setStatus("Registering the display…", "wait");
  try {
    const hearth = await identity("Display");
    const display = await hearth.registerDisplay();
    ui.display = display;
    $("code").textContent = display.code;
    const qr = $("qr");
    qr.src = `${API}/demo/qr.svg?code=${encodeURIComponent(display.code)}`;
    qr.hidden = false;
    $("controller-link").href = pageLink({ code: display.code });
    $("code-expiry").textContent = `Valid until ${new Date(display.expiresAt).toLocaleTimeString()}.`;
    setConn("waiting", "waiting for a controller");
    setStatus("Waiting for a controller to enter the code…", "wait");
    const session = await display.paired;
    if (ui.display !== display) return session.close();
    ui.display = null;
    onPaired(session);
  } catch (err) {
    if (err.code === "closed") return; // we stopped waiting ourselves
    setConn("idle");
    setStatus(err.status === 410 ? "The code expired before a controller entered it." : "", "bad");
    if (err.status !== 410) fail("Could not register the display", err);
    $("new-code-btn").hidden = false;
  }
}

function emptyLine() {
  const li = document.createElement("li");
  li.className = "muted empty";
  li.textContent = "Nothing yet.";
  return li;
}

/** This page's address with `params` (and `?api=` kept when the page was given one). */
function pageLink(params) {
  const url = new URL(location.pathname, location.origin);
  const api = new URLSearchParams(location.search).get("api");
  if (api) url.searchParams.set("api", api);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

// ---- pairing: the controller -----------------------------------------------------------------

function startController() {
  choose("controller");
  $("pair-form").hidden = false;
  $("send-form").hidden = true;
  $("pair-btn").disabled = false;
  setStatus("Enter the code shown on the display.", "");
  $("code-input").focus();
}

async function pairWith(raw) {
  const code = raw.trim().toUpperCase();
  $("code-input").value = code;
  if (!CODE_RE.test(code)) {
    showError("A code is 6 characters: 2-9 and A-Z, never 0, O, 1, I or L.");
    return;
  }
  showError("");
  $("pair-btn").disabled = true;
  setStatus("Pairing…", "wait");
  try {
    const hearth = await identity("Controller");
    onPaired(await hearth.pair(code));
  } catch (err) {
    $("pair-btn").disabled = false;
    setStatus("");
    fail("Could not pair", err);
  }
}

// ---- pairing: both sides once paired ---------------------------------------------------------

function onPaired(session) {
  ui.peerId = null;
  ui.peerSeen = false;
  ui.opens = 0;
  $("status").dataset.opens = "0";
  $("session").hidden = false;
  $("leave-btn").hidden = false;
  $("sent").replaceChildren();
  if (ui.mode === "display") {
    $("display-waiting").hidden = true;
    $("display-paired").hidden = false;
  } else {
    $("pair-form").hidden = true;
    $("send-form").hidden = false;
  }
  showError("");
  setStatus("Paired. Connecting to Hearth…", "wait");
  follow(session);
  session.on("presence", (list) => {
    if (ui.session !== session) return;
    renderPresence($("presence"), list, session.participantId);
    if (!ui.peerId) return;
    const here = list.some((p) => p.participant_id === ui.peerId);
    if (here) ui.peerSeen = true;
    else if (ui.peerSeen) peerLeft(session);
  });
  session.on("session.paired", (frame) => {
    ui.peerId = ui.mode === "display" ? frame.controller_participant_id : frame.display_participant_id;
    ui.peerSeen = session.presence.some((p) => p.participant_id === ui.peerId);
    maybeCall();
  });
  // The package passes on signals from the paired peer only. One at a time, in order: an ICE
  // candidate must not overtake its offer or answer.
  session.on("signal", (frame) => {
    ui.signals = ui.signals.then(() => onSignal(frame)).catch((err) => console.error("signal", err));
  });
  session.on("*", (frame) => {
    // An application's own event (hearth.publish, e.g. from a trigger on one of its tables).
    if (ui.mode === "display" && frame.type.startsWith("app.")) {
      const { type, seq, session_id, at, ...payload } = frame;
      appendLine($("received"), "msg", `${type} ${JSON.stringify(payload)}`, at);
    }
  });
  session.on("session.ended", (frame) => setStatus(`The session is over (${frame.reason}).`, "bad"));
  session.on("session.expired", (frame) => setStatus(`The session is over (${frame.reason}).`, "bad"));
  session.ready.then(
    () => {
      if (ui.session !== session || channelOpen()) return;
      setStatus(
        ui.mode === "display"
          ? "Connected to Hearth; waiting for the controller's offer…"
          : "Connected to Hearth; calling the display…",
        "wait",
      );
      maybeCall();
    },
    (err) => fail("Could not connect", err),
  );
}

function peerLeft(session) {
  closeCall();
  const other = ui.mode === "display" ? "controller" : "display";
  session.leave().catch(() => session.close());
  ui.session = null;
  setConn("idle");
  $("session").hidden = true;
  if (ui.mode === "display") {
    setStatus(`The ${other} left. Get a new code to pair again.`, "bad");
    $("new-code-btn").hidden = false;
  } else {
    setStatus(`The ${other} left. Enter another code to pair again.`, "bad");
    $("send-form").hidden = true;
    $("pair-form").hidden = false;
    $("pair-btn").disabled = false;
    $("code-input").value = "";
  }
}

/** Leaves whatever this tab is in (a session, a waiting display, the match queue). */
async function leaveCurrent() {
  closeCall();
  const session = ui.session;
  ui.session = null;
  ui.display?.close();
  ui.display = null;
  if (ui.match) {
    ui.match = null;
    session?.close();
    return;
  }
  if (session && session.state !== "closed") await session.leave().catch(() => session.close());
}

async function leavePairing() {
  const mode = ui.mode;
  await leaveCurrent();
  setConn("idle");
  $("session").hidden = true;
  if (mode === "display") {
    $("display-paired").hidden = true;
    setStatus("You left. Get a new code to pair again.", "");
    $("new-code-btn").hidden = false;
  } else {
    startController();
  }
}

// ---- WebRTC over the package's signaling -------------------------------------------------------

function channelOpen() {
  return !!(ui.dc && ui.dc.readyState === "open");
}

function sendSignal(kind, data) {
  const session = ui.session;
  if (!session || !ui.peerId) return;
  session.signal(ui.peerId, kind, data).catch((err) => console.warn("signal not sent", err));
}

function maybeCall() {
  // The controller calls; the display answers.
  if (ui.mode !== "controller" || !ui.session || ui.session.state !== "open" || !ui.peerId) return;
  if (ui.pc && !["failed", "closed"].includes(ui.pc.connectionState)) return;
  startCall().catch((err) => fail("Could not start the call", err));
}

function closeCall() {
  if (ui.dc) {
    ui.dc.onopen = ui.dc.onclose = ui.dc.onmessage = null;
    ui.dc.close();
  }
  if (ui.pc) ui.pc.close();
  ui.pc = null;
  ui.dc = null;
  ui.remoteIce = [];
  setChannelUi(false);
}

function newPeerConnection() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  // Local candidates wait until our offer or answer has gone out.
  pc.localQueue = [];
  pc.described = false;
  pc.onicecandidate = (e) => {
    if (ui.pc !== pc || !e.candidate) return;
    const data = e.candidate.toJSON();
    if (pc.described) sendSignal("ice", data);
    else pc.localQueue.push(data);
  };
  pc.onconnectionstatechange = () => {
    if (ui.pc !== pc) return;
    if (pc.connectionState === "failed") {
      setStatus("The peer connection failed.", "bad");
      if (ui.mode === "controller") setTimeout(maybeCall, 1000);
    }
  };
  return pc;
}

function describedLocally(pc) {
  pc.described = true;
  pc.localQueue.splice(0).forEach((c) => sendSignal("ice", c));
}

async function startCall() {
  closeCall();
  const pc = newPeerConnection();
  ui.pc = pc;
  wireChannel(pc.createDataChannel("hearth-demo"));
  setStatus("Sending an offer to the display through Hearth…", "wait");
  await pc.setLocalDescription(await pc.createOffer());
  if (ui.pc !== pc) return;
  sendSignal("offer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
  describedLocally(pc);
}

async function addRemoteIce(pc) {
  for (const c of ui.remoteIce.splice(0)) {
    try {
      await pc.addIceCandidate(c);
    } catch (err) {
      console.warn("ignored an ICE candidate", err);
    }
  }
}

async function onSignal(f) {
  const data = f.data || {};
  if (f.kind === "offer" && ui.mode === "display") {
    closeCall();
    const pc = newPeerConnection();
    ui.pc = pc;
    pc.ondatachannel = (e) => {
      if (ui.pc === pc) wireChannel(e.channel);
    };
    await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (ui.pc !== pc) return;
    sendSignal("answer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
    describedLocally(pc);
    await addRemoteIce(pc);
    setStatus("Answered the controller's offer; connecting…", "wait");
  } else if (f.kind === "answer" && ui.mode === "controller") {
    const pc = ui.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
    await addRemoteIce(pc);
  } else if (f.kind === "ice") {
    ui.remoteIce.push(data);
    if (ui.pc && ui.pc.remoteDescription) await addRemoteIce(ui.pc);
  }
}

function wireChannel(dc) {
  ui.dc = dc;
  dc.onopen = () => {
    if (ui.dc !== dc) return;
    ui.opens += 1;
    $("status").dataset.opens = String(ui.opens);
    showError("");
    setStatus(
      ui.mode === "controller"
        ? "DataChannel open: type a message for the display."
        : "DataChannel open: waiting for the controller's messages.",
      "ok",
    );
    setChannelUi(true);
  };
  dc.onclose = () => {
    if (ui.dc !== dc) return;
    setChannelUi(false);
    setStatus("DataChannel closed.", "bad");
  };
  dc.onmessage = (e) => {
    if (ui.mode === "display") appendLine($("received"), "msg", String(e.data));
  };
}

function setChannelUi(open) {
  $("message-input").disabled = !open;
  $("send-btn").disabled = !open;
  if (open && ui.mode === "controller") $("message-input").focus();
}

function sendText(ev) {
  ev.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!text.trim() || !channelOpen()) return;
  ui.dc.send(text);
  appendLine($("sent"), "msg", text); // oldest first, as the display shows them
  input.value = "";
  input.focus();
}

// ---- room ----------------------------------------------------------------------------------------

async function startRoom(create) {
  const name = $("room-name").value.trim();
  const code = $("room-code").value.trim().toUpperCase();
  if (!name) return showError("Enter your name first.");
  if (!create && !CODE_RE.test(code)) {
    return showError("A room code is 6 characters: 2-9 and A-Z, never 0, O, 1, I or L.");
  }
  showError("");
  setStatus(create ? "Creating a room…" : "Joining the room…", "wait");
  try {
    const hearth = await identity(name);
    let session;
    let roomCode = code;
    if (create) {
      const room = await hearth.createSession({ name: `${name}'s room` });
      roomCode = room.code;
      session = await hearth.joinSession(room.sessionId);
    } else {
      session = await hearth.joinByCode(code);
    }
    enterRoom(session, roomCode);
  } catch (err) {
    setStatus("");
    fail(create ? "Could not create a room" : "Could not join the room", err);
  }
}

function enterRoom(session, code) {
  $("room-form").hidden = true;
  $("room-live").hidden = false;
  $("room-code-show").textContent = code;
  $("chat").replaceChildren();
  const names = new Map(); // participant id -> name, kept after they leave for the chat's sake
  let droppedAfter = null; // the last event seen when the connection dropped
  let opened = false;
  follow(session);
  setStatus(`Share the code ${code} to invite others.`, "");
  session.on("presence", (list) => {
    for (const p of list) names.set(p.participant_id, p.display_name || "someone");
    renderPresence($("room-presence"), list, session.participantId);
  });
  session.on("presence.join", (f) => {
    names.set(f.participant_id, f.display_name || "someone");
    if (f.participant_id === session.participantId) return;
    appendLine($("chat"), "system", `${names.get(f.participant_id)} joined`, f.at);
  });
  session.on("presence.leave", (f) => {
    const why = f.reason === "left" ? "left" : `left (${f.reason})`;
    appendLine($("chat"), "system", `${names.get(f.participant_id) || "someone"} ${why}`, f.at);
  });
  session.on("message", (f) => {
    const li = appendLine($("chat"), "msg", "", f.at);
    li.dataset.seq = String(f.seq);
    const who = document.createElement("b");
    const you = f.participant_id === session.participantId ? " (you)" : "";
    who.textContent = `${names.get(f.participant_id) || "someone"}${you}`;
    li.append(who, document.createTextNode(String(f.body?.text ?? JSON.stringify(f.body))));
  });
  session.on("state", (state) => {
    if (state === "open") opened = true;
    if (state === "reconnecting" && opened && droppedAfter === null) {
      droppedAfter = session.lastSeq ?? 0;
      appendLine($("chat"), "system bad", "Connection lost. Reconnecting…");
    }
  });
  session.on("recovered", (ok) => {
    if (droppedAfter === null) return;
    appendLine(
      $("chat"),
      ok ? "system ok" : "system bad",
      ok
        ? `Reconnected: resumed after event #${droppedAfter}, nothing missed.`
        : "Reconnected, but some events were too old to replay: the chat may have gaps.",
    ).dataset.recovered = String(ok);
    droppedAfter = null;
  });
  session.on("closed", ({ reason }) => {
    if (ui.session === session) setStatus(`You are out of the room: ${reason}`, "bad");
  });
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || !ui.session) return;
  input.value = "";
  try {
    await ui.session.send({ text }); // shown when its event comes back, in the room's order
    showError("");
  } catch (err) {
    input.value = input.value || text;
    fail("Not sent", err);
  }
}

async function leaveRoom() {
  await leaveCurrent();
  setConn("idle");
  $("room-live").hidden = true;
  $("room-form").hidden = false;
  setStatus("You left the room.", "");
}

// ---- match ---------------------------------------------------------------------------------------

async function findMatch(ev, waiting = "Waiting in the queue for someone else…") {
  ev?.preventDefault();
  const name = $("match-name").value.trim();
  if (!name) return showError("Enter your name first.");
  showError("");
  $("match-live").hidden = true;
  $("match-find").disabled = true;
  $("match-cancel").hidden = false;
  setConn("waiting", "in the queue");
  setStatus(waiting, "wait");
  try {
    const hearth = await identity(name);
    const match = await hearth.findMatch();
    showMatch(match);
  } catch (err) {
    $("match-find").disabled = false;
    $("match-cancel").hidden = true;
    setConn("idle");
    if (err.code === "cancelled") return setStatus("You left the queue.", "");
    setStatus("");
    fail("Could not find a match", err);
  }
}

function showMatch(match) {
  ui.match = match;
  const session = match.session;
  $("match-cancel").hidden = true;
  $("match-live").hidden = false;
  $("match-session").textContent = match.sessionId;
  const lk = match.livekit;
  $("match-room").textContent = lk ? lk.room : "LiveKit is not configured on this server";
  $("match-url").textContent = lk ? lk.url : "—";
  $("match-token").textContent = lk ? `${lk.token.slice(0, 32)}…` : "—";
  $("match-token").title = lk ? "the LiveKit access token of this side (truncated)" : "";
  $("match-peer").textContent = "someone";
  follow(session);
  setStatus("Matched.", "ok");
  const showPresence = (list) => {
    const peer = list.find((p) => p.identity_id === match.peerIdentityId);
    if (peer) $("match-peer").textContent = peer.display_name || "someone";
    renderPresence($("match-presence"), list, session.participantId);
  };
  session.on("presence", showPresence);
  // The welcome may have come before this handler: start from the list as it is now.
  showPresence(session.presence);
  let ended = null; // match.ended: who skipped or ended it
  session.on("match.ended", (frame) => {
    ended = frame;
  });
  session.on("closed", () => {
    if (ui.match !== match) return;
    ui.match = null;
    ui.session = null;
    const peer = $("match-peer").textContent;
    const action = ended?.action === "skip" ? "skipped" : "ended the match";
    afterMatch(ended && ended.by !== ui.hearth.identityId ? `${peer} ${action}.` : "The match is over.");
  });
}

async function matchAction(action) {
  const match = ui.match;
  if (!match) return;
  ui.match = null;
  try {
    await match[action]();
  } catch (err) {
    fail(`Could not ${action}`, err);
  }
  await afterMatch(action === "skip" ? "Skipped." : "You ended the match.");
}

/** After a match: back in the queue when the server put us there (a skip), else ready to find one. */
async function afterMatch(text) {
  $("match-live").hidden = true;
  const state = await ui.hearth.matchState().catch(() => ({ state: "idle" }));
  if (state.state === "waiting") {
    return findMatch(null, `${text} Looking for someone else…`);
  }
  setConn("idle");
  $("match-find").disabled = false;
  setStatus(text, "");
}

async function leaveQueue() {
  try {
    await ui.hearth?.leaveQueue();
  } catch (err) {
    fail("Could not leave the queue", err);
  }
}

// ---- wiring ----------------------------------------------------------------------------------

function wire() {
  $("home-link").href = pageLink({});
  $("role-display").addEventListener("click", startDisplay);
  $("role-controller").addEventListener("click", startController);
  $("mode-room").addEventListener("click", () => {
    choose("room");
    $("room-name").focus();
  });
  $("mode-match").addEventListener("click", () => {
    choose("match");
    $("match-name").focus();
  });
  $("new-code-btn").addEventListener("click", startDisplay);
  $("leave-btn").addEventListener("click", leavePairing);
  $("pair-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    pairWith($("code-input").value);
  });
  $("send-form").addEventListener("submit", sendText);
  $("restart-btn").addEventListener("click", () => {
    if (ui.mode === "controller" && ui.peerId) startCall().catch((err) => fail("Could not call", err));
  });
  $("room-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    startRoom(true);
  });
  $("room-join").addEventListener("click", () => startRoom(false));
  $("chat-form").addEventListener("submit", sendChat);
  $("room-leave").addEventListener("click", leaveRoom);
  $("match-form").addEventListener("submit", findMatch);
  $("match-cancel").addEventListener("click", leaveQueue);
  $("match-skip").addEventListener("click", () => matchAction("skip"));
  $("match-end").addEventListener("click", () => matchAction("end"));
  // Leave on the way out, so the others see presence.leave at once rather than after a timeout.
  window.addEventListener("pagehide", () => {
    if (ui.session && !ui.match) ui.session.leave().catch(() => {});
  });

  // A scanned QR code (or the link) opens the controller with the code filled in and pairs.
  const code = new URLSearchParams(location.search).get("code");
  if (code) {
    history.replaceState(null, "", pageLink({}));
    startController();
    pairWith(code);
  }
}

wire();

// For debugging in the console and for the browser tests.
window.hearthDemo = {
  api: API,
  get sessionId() {
    return ui.session?.sessionId ?? null;
  },
  get participantId() {
    return ui.session?.participantId ?? null;
  },
  get lastSeq() {
    return ui.session?.lastSeq ?? null;
  },
  get peerId() {
    return ui.peerId;
  },
};
