// Hearth demo: a display and a controller pair through Hearth, then talk over a WebRTC DataChannel
// that Hearth's signaling (websocket `signal` frames) set up. Plain JavaScript, no build step.
"use strict";

(() => {
  // Close codes after which reconnecting cannot help (SPEC section 6); 4400 means our own bad request.
  const STOP_CODES = new Set([1000, 4400, 4401, 4403, 4404, 4410]);
  const CODE_RE = /^[2-9A-HJKMNP-Z]{6}$/;
  const $ = (id) => document.getElementById(id);

  const state = {
    role: null,
    identityToken: null,
    sessionId: null,
    participantId: null,
    token: null, // the session token
    peerId: null, // the other side's participant id
    presence: new Map(),
    lastSeq: null, // the last session event seen: reconnects ask for what came after it
    ws: null,
    welcomed: false,
    attempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    holdUntil: 0,
    stopped: false,
    outbox: [],
    pc: null,
    dc: null,
    remoteIce: [],
    signals: Promise.resolve(),
    opens: 0,
    reconnects: 0,
  };

  // ---- small helpers -------------------------------------------------------------------------

  function setStatus(text, tone) {
    const el = $("status");
    el.textContent = text;
    el.dataset.tone = tone || "";
  }

  function setConn(text, st) {
    const el = $("conn");
    el.textContent = text;
    el.dataset.state = st;
  }

  function showError(text) {
    const el = $("error");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function fail(what, err) {
    console.error(what, err);
    setStatus(`${what}: ${err && err.message ? err.message : err}`, "bad");
  }

  async function api(path, { body, token } = {}) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || `HTTP ${res.status}`);
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }

  async function ensureIdentity(name) {
    if (!state.identityToken) {
      const r = await api("/v1/identities", { body: { display_name: name } });
      state.identityToken = r.token;
    }
  }

  function choose(role) {
    state.role = role;
    $("view-home").hidden = true;
    $("view-display").hidden = role !== "display";
    $("view-controller").hidden = role !== "controller";
    const badge = $("role-badge");
    badge.textContent = role;
    badge.hidden = false;
    document.title = `Hearth demo · ${role}`;
    $("status").hidden = false;
    showError("");
  }

  // ---- display: register, show the code, wait for a controller --------------------------------

  async function startDisplay() {
    choose("display");
    $("display-waiting").hidden = false;
    $("display-paired").hidden = true;
    $("new-code-btn").hidden = true;
    $("code").textContent = "······";
    setStatus("Registering the display…", "wait");
    try {
      await ensureIdentity("Display");
      const d = await api("/v1/displays", { token: state.identityToken });
      state.sessionId = d.session_id;
      state.participantId = d.participant_id;
      state.token = d.token;
      $("code").textContent = d.code;
      const qr = $("qr");
      qr.src = `/demo/qr.svg?code=${encodeURIComponent(d.code)}`;
      qr.hidden = false;
      $("controller-link").href = `${location.origin}/?code=${d.code}`;
      $("code-expiry").textContent = `Valid until ${new Date(d.expires_at).toLocaleTimeString()}.`;
      setStatus("Waiting for a controller to enter the code…", "wait");
      waitForPairing();
    } catch (err) {
      fail("Could not register the display", err);
      $("new-code-btn").hidden = false;
    }
  }

  function waitForPairing() {
    // The display holds no websocket while it waits: a server-sent-events stream that ends with
    // `paired` or `expired` (an EventSource cannot set headers, hence ?token=).
    const url = `/v1/displays/${state.sessionId}/events?token=${encodeURIComponent(state.token)}`;
    const es = new EventSource(url);
    setConn("waiting for a controller", "waiting");
    es.addEventListener("paired", (ev) => {
      es.close();
      const frame = JSON.parse(ev.data);
      state.peerId = frame.controller_participant_id;
      // Connect from the paired event on: an offer the controller sends before our socket is up is
      // replayed to us, not lost.
      state.lastSeq = Number.isInteger(frame.seq) ? frame.seq : null;
      onPaired();
    });
    es.addEventListener("expired", () => {
      es.close();
      setConn("offline", "closed");
      setStatus("The code expired before a controller entered it.", "bad");
      $("new-code-btn").hidden = false;
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setConn("offline", "closed");
        setStatus("Lost the pairing stream.", "bad");
        $("new-code-btn").hidden = false;
      } else {
        setConn("reconnecting", "connecting");
      }
    };
  }

  // ---- controller: enter the code ------------------------------------------------------------

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
      await ensureIdentity("Controller");
      const r = await api("/v1/pair", { body: { code }, token: state.identityToken });
      state.sessionId = r.session_id;
      state.participantId = r.participant_id;
      state.token = r.token;
      onPaired();
    } catch (err) {
      $("pair-btn").disabled = false;
      fail("Could not pair", err);
    }
  }

  // ---- both: the session websocket -----------------------------------------------------------

  function onPaired() {
    $("session").hidden = false;
    if (state.role === "display") {
      $("display-waiting").hidden = true;
      $("display-paired").hidden = false;
    } else {
      $("pair-form").hidden = true;
      $("send-form").hidden = false;
    }
    setStatus("Paired. Connecting to Hearth…", "wait");
    connect();
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const after = state.lastSeq;
    let url = `${proto}//${location.host}/v1/ws?token=${encodeURIComponent(state.token)}`;
    if (after !== null) url += `&after=${after}`;
    setConn(state.reconnects ? "reconnecting…" : "connecting…", "connecting");
    const ws = new WebSocket(url);
    state.ws = ws;
    state.welcomed = false;
    ws.onmessage = (ev) => {
      if (state.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      onFrame(frame, after);
    };
    ws.onclose = (ev) => {
      if (state.ws === ws) onClose(ev);
    };
  }

  function onClose(ev) {
    state.ws = null;
    state.welcomed = false;
    clearInterval(state.pingTimer);
    if (state.stopped) return;
    if (STOP_CODES.has(ev.code)) {
      setConn("disconnected", "closed");
      const why = ev.reason ? `${ev.reason} ` : "";
      setStatus(`Hearth closed the connection: ${why}(${ev.code}).`, "bad");
      return;
    }
    // Dropped (network, server restart 1012, ...): come back with `after` and a growing backoff.
    const backoff = Math.min(8000, 500 * 2 ** state.attempt) * (0.75 + Math.random() / 2);
    state.attempt += 1;
    state.reconnects += 1;
    const wait = Math.max(backoff, state.holdUntil - Date.now());
    setConn(`reconnecting in ${Math.max(1, Math.round(wait / 1000))} s`, "connecting");
    state.reconnectTimer = setTimeout(connect, wait);
  }

  function onFrame(f, after) {
    if (f.type === "welcome") {
      onWelcome(f, after);
      return;
    }
    if (f.type === "pong") return;
    if (f.type === "error") {
      console.warn("Hearth error frame", f);
      return;
    }
    // Session events only (identity events have their own sequence); never one twice.
    if (typeof f.seq !== "number" || f.session_id !== state.sessionId) return;
    if (state.lastSeq !== null && f.seq <= state.lastSeq) return;
    state.lastSeq = f.seq;
    switch (f.type) {
      case "presence.join":
        state.presence.set(f.participant_id, {
          participant_id: f.participant_id,
          identity_id: f.identity_id,
          role: f.role,
          display_name: f.display_name,
        });
        if (!state.peerId && f.role === peerRole()) state.peerId = f.participant_id;
        renderPresence();
        maybeCall();
        break;
      case "presence.leave":
        state.presence.delete(f.participant_id);
        renderPresence();
        if (f.participant_id === state.peerId) setStatus(`The other side left (${f.reason}).`, "bad");
        break;
      case "session.paired":
        if (!state.peerId) {
          state.peerId =
            state.role === "display" ? f.controller_participant_id : f.display_participant_id;
        }
        maybeCall();
        break;
      case "signal":
        // One at a time, in order: an ICE candidate must not overtake its offer or answer.
        state.signals = state.signals.then(() => onSignal(f)).catch((err) => console.error("signal", err));
        break;
      case "session.expired":
      case "session.ended":
        setStatus(`The session is over (${f.reason}).`, "bad");
        break;
      default:
        // An application's own event (hearth.publish, e.g. from a trigger on one of its tables).
        if (f.type.startsWith("app.")) {
          const { type, seq, session_id, at, ...payload } = f;
          showReceived(`${type} ${JSON.stringify(payload)}`);
        }
        break;
    }
  }

  function onWelcome(f, after) {
    state.welcomed = true;
    state.attempt = 0;
    state.participantId = f.participant_id;
    if (state.lastSeq === null) state.lastSeq = f.seq;
    state.presence = new Map(f.presence.map((p) => [p.participant_id, p]));
    if (!state.peerId) {
      const other = f.presence.find((p) => p.role === peerRole());
      if (other) state.peerId = other.participant_id;
    }
    renderPresence();
    const el = $("conn");
    el.dataset.after = after === null ? "" : String(after);
    setConn(state.reconnects ? `reconnected · resumed after #${after}` : "connected", "open");
    clearInterval(state.pingTimer);
    const every = Math.max(5, Number(f.heartbeat_interval_s) || 30) * 1000;
    state.pingTimer = setInterval(() => send({ type: "ping" }), every);
    const queued = state.outbox.splice(0);
    queued.forEach(send);
    if (!channelOpen() && !state.pc) {
      setStatus(
        state.role === "display"
          ? "Connected to Hearth; waiting for the controller's offer…"
          : "Connected to Hearth; calling the display…",
        "wait",
      );
    }
    maybeCall();
  }

  function send(frame) {
    if (state.ws && state.welcomed && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(frame));
    } else if (frame.type !== "ping") {
      state.outbox.push(frame); // sent once the socket is back
    }
  }

  function renderPresence() {
    const list = $("presence");
    list.replaceChildren();
    const rank = (p) => (p.role === "display" ? 0 : 1);
    const people = [...state.presence.values()].sort((a, b) => rank(a) - rank(b));
    for (const p of people) {
      const li = document.createElement("li");
      li.dataset.participant = p.participant_id;
      li.dataset.role = p.role || "";
      const role = document.createElement("span");
      role.className = "role";
      role.textContent = p.role || "participant";
      li.append(role);
      if (p.display_name && p.display_name.toLowerCase() !== (p.role || "").toLowerCase()) {
        li.append(document.createTextNode(p.display_name));
      }
      if (p.participant_id === state.participantId) {
        li.classList.add("you");
        li.append(document.createTextNode("(you)"));
      }
      list.append(li);
    }
  }

  // ---- WebRTC over Hearth's signaling --------------------------------------------------------

  // The display talks only to its paired controller (from `session.paired`), the controller only to
  // the display.
  function peerRole() {
    return state.role === "display" ? "controller" : "display";
  }

  function channelOpen() {
    return !!(state.dc && state.dc.readyState === "open");
  }

  function sendSignal(kind, data) {
    if (state.peerId) send({ type: "signal", to: state.peerId, kind, data });
  }

  function maybeCall() {
    // The controller calls; the display answers.
    if (state.role !== "controller" || !state.welcomed || !state.peerId) return;
    if (state.pc && !["failed", "closed"].includes(state.pc.connectionState)) return;
    startCall().catch((err) => fail("Could not start the call", err));
  }

  function closeCall() {
    if (state.dc) {
      state.dc.onopen = state.dc.onclose = state.dc.onmessage = null;
      state.dc.close();
    }
    if (state.pc) state.pc.close();
    state.pc = null;
    state.dc = null;
    state.remoteIce = [];
    setChannelUi(false);
  }

  function newPeerConnection() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    // Local candidates wait until our offer or answer has gone out.
    pc.localQueue = [];
    pc.described = false;
    pc.onicecandidate = (e) => {
      if (state.pc !== pc || !e.candidate) return;
      const data = e.candidate.toJSON();
      if (pc.described) sendSignal("ice", data);
      else pc.localQueue.push(data);
    };
    pc.onconnectionstatechange = () => {
      if (state.pc !== pc) return;
      if (pc.connectionState === "failed") {
        setStatus("The peer connection failed.", "bad");
        if (state.role === "controller") setTimeout(maybeCall, 1000);
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
    state.pc = pc;
    wireChannel(pc.createDataChannel("hearth-demo"));
    setStatus("Sending an offer to the display through Hearth…", "wait");
    await pc.setLocalDescription(await pc.createOffer());
    if (state.pc !== pc) return;
    sendSignal("offer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
    describedLocally(pc);
  }

  async function addRemoteIce(pc) {
    for (const c of state.remoteIce.splice(0)) {
      try {
        await pc.addIceCandidate(c);
      } catch (err) {
        console.warn("ignored an ICE candidate", err);
      }
    }
  }

  async function onSignal(f) {
    // Only the paired peer may set up the DataChannel: anyone else who got into the session (a
    // participant the server let in some other way) is ignored, its offer included.
    if (!state.peerId || f.from !== state.peerId) {
      console.warn("ignored a signal from a participant who is not the paired peer", f.from);
      return;
    }
    const data = f.data || {};
    if (f.kind === "offer" && state.role === "display") {
      closeCall();
      const pc = newPeerConnection();
      state.pc = pc;
      pc.ondatachannel = (e) => {
        if (state.pc === pc) wireChannel(e.channel);
      };
      await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      if (state.pc !== pc) return;
      sendSignal("answer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
      describedLocally(pc);
      await addRemoteIce(pc);
      setStatus("Answered the controller's offer; connecting…", "wait");
    } else if (f.kind === "answer" && state.role === "controller") {
      const pc = state.pc;
      if (!pc || pc.signalingState !== "have-local-offer") return;
      await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      await addRemoteIce(pc);
    } else if (f.kind === "ice") {
      state.remoteIce.push(data);
      if (state.pc && state.pc.remoteDescription) await addRemoteIce(state.pc);
    }
  }

  function wireChannel(dc) {
    state.dc = dc;
    dc.onopen = () => {
      if (state.dc !== dc) return;
      state.opens += 1;
      $("status").dataset.opens = String(state.opens);
      setStatus(
        state.role === "controller"
          ? "DataChannel open: type a message for the display."
          : "DataChannel open: waiting for the controller's messages.",
        "ok",
      );
      setChannelUi(true);
    };
    dc.onclose = () => {
      if (state.dc !== dc) return;
      setChannelUi(false);
      setStatus("DataChannel closed.", "bad");
    };
    dc.onmessage = (e) => {
      if (state.role === "display") showReceived(String(e.data));
    };
  }

  function setChannelUi(open) {
    $("message-input").disabled = !open;
    $("send-btn").disabled = !open;
    if (open && state.role === "controller") $("message-input").focus();
  }

  function stamp() {
    const t = document.createElement("time");
    t.textContent = new Date().toLocaleTimeString();
    return t;
  }

  function showReceived(text) {
    const box = $("received");
    box.querySelectorAll(".empty").forEach((el) => el.remove());
    const div = document.createElement("div");
    div.className = "msg";
    div.append(stamp(), document.createTextNode(text));
    box.append(div);
  }

  function sendText(ev) {
    ev.preventDefault();
    const input = $("message-input");
    const text = input.value;
    if (!text.trim() || !channelOpen()) return;
    state.dc.send(text);
    const li = document.createElement("li");
    li.append(stamp(), document.createTextNode(text));
    $("sent").prepend(li);
    input.value = "";
    input.focus();
  }

  // ---- wiring --------------------------------------------------------------------------------

  function leave() {
    // Leave explicitly, so the other side sees presence.leave at once rather than after a timeout.
    state.stopped = true;
    clearTimeout(state.reconnectTimer);
    if (state.sessionId && state.token) {
      fetch(`/v1/sessions/${state.sessionId}/leave`, {
        method: "POST",
        keepalive: true,
        headers: { Authorization: `Bearer ${state.token}` },
      }).catch(() => {});
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("role-display").addEventListener("click", startDisplay);
    $("role-controller").addEventListener("click", () => {
      choose("controller");
      setStatus("Enter the code shown on the display.", "");
      $("code-input").focus();
    });
    $("new-code-btn").addEventListener("click", startDisplay);
    $("pair-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      pairWith($("code-input").value);
    });
    $("send-form").addEventListener("submit", sendText);
    $("restart-btn").addEventListener("click", () => {
      if (state.role === "controller" && state.peerId) startCall().catch((err) => fail("Could not call", err));
    });
    window.addEventListener("pagehide", leave);

    // A scanned QR code (or the link) opens the controller with the code filled in and pairs.
    const code = new URLSearchParams(location.search).get("code");
    if (code) {
      history.replaceState(null, "", "/");
      choose("controller");
      pairWith(code);
    }
  });

  // For debugging in the console and for the browser test.
  window.hearthDemo = {
    get sessionId() {
      return state.sessionId;
    },
    get participantId() {
      return state.participantId;
    },
    get lastSeq() {
      return state.lastSeq;
    },
    get peerId() {
      return state.peerId;
    },
    // Drops the websocket as a network failure would; the reconnect waits at least holdMs.
    // Returns the sequence number the reconnect will ask to resume after.
    dropSocket(holdMs = 0) {
      state.holdUntil = Date.now() + holdMs;
      if (state.ws) state.ws.close(4000, "dropped on purpose");
      return state.lastSeq;
    },
    reconnectNow() {
      state.holdUntil = 0;
      if (state.reconnectTimer) connect();
    },
  };
})();
