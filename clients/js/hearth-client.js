// hearth-client: the JavaScript client of Hearth (docs/protocol.md in the Hearth repository is the wire
// protocol it speaks). One ES module, no dependencies, for browsers and Node 20+ (pass `WebSocket` there).

/** Close codes after which reconnecting cannot help: left, bad request, forbidden, session over. */
const TERMINAL = new Set([1000, 4400, 4403, 4410]);
const CLOSE_REASONS = {
  1000: "left the session",
  4400: "the server refused the connection's parameters",
  4401: "the token was refused twice in a row",
  4403: "not allowed",
  4404: "no longer a participant of the session",
  4410: "the session is over",
};
const STORAGE_PREFIX = "hearth-client:";

/** Every failure the client reports: `code` is the server's (`HT404`...) or the client's own (lowercase),
 * `status` the HTTP status (0 when no HTTP answer was involved). */
export class HearthError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "HearthError";
    this.code = code;
    this.status = status;
  }
}

/** A random delay in [0, min(cap, base * 2^attempt)) ms: exponential backoff with full jitter. */
export function backoffDelay(attempt, baseMs = 500, capMs = 20000) {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
}

/** Seconds since the epoch at which a JWT expires, or null (Hearth's tokens are JWTs; nothing is verified). */
function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

function defaultStorage() {
  try {
    const storage = globalThis.sessionStorage;
    return storage && typeof storage.getItem === "function" ? storage : null;
  } catch {
    return null; // a sandboxed frame throws on access
  }
}

function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  /** Calls `handler` for every `type` until the returned function is called. */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this._handlers.get(type)?.delete(handler);
  }

  _emit(type, value) {
    for (const handler of [...(this._handlers.get(type) || [])]) {
      try {
        handler(value);
      } catch (error) {
        report(error); // one listener's bug must not break delivery to the others
      }
    }
  }
}

export class Hearth {
  /**
   * @param options.url the server's base URL (default: the page's origin)
   * @param options.WebSocket, options.fetch, options.EventSource implementations (default: the globals)
   * @param options.getToken async () => the app's own JWT, exchanged for Hearth tokens when they expire
   * @param options.storage where sequence numbers survive a reload (default: sessionStorage; null: none)
   * @param options.reconnectBaseMs, options.reconnectCapMs backoff (default 500 ms and 20 s)
   * @param options.maxQueued sends waiting for a connection, per session (default 100)
   */
  constructor(options = {}) {
    const origin = globalThis.location?.origin;
    this.url = String(options.url ?? origin ?? "").replace(/\/+$/, "");
    if (!/^https?:\/\//.test(this.url)) throw new HearthError("bad_option", "url must be an http(s) URL");
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this._EventSource = options.EventSource === undefined ? globalThis.EventSource : options.EventSource;
    this._getToken = options.getToken ?? null;
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.reconnectBaseMs = options.reconnectBaseMs ?? 500;
    this.reconnectCapMs = options.reconnectCapMs ?? 20000;
    this.maxQueued = options.maxQueued ?? 100;
    this.identityId = null;
    this.token = options.token ?? null;
    this._matchWait = null;
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  async _request(method, path, { body, token, signal } = {}) {
    if (!this._fetch) throw new HearthError("unsupported", "no fetch implementation: pass options.fetch");
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await this._fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw new HearthError("closed", "the request was cancelled");
      throw new HearthError("network", `${method} ${path}: ${error?.message ?? error}`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      // an answer without a JSON body (a proxy's error page): the status still says what happened
    }
    if (!response.ok) {
      const error = data?.error;
      throw new HearthError(
        error?.code ?? `HT${response.status}`,
        error?.message ?? `${method} ${path} answered ${response.status}`,
        response.status,
      );
    }
    return data;
  }

  /** The identity token, renewed first when it expires within a minute (or a tenth of its life). */
  async _identityToken() {
    if (!this.token) throw new HearthError("no_identity", "call createIdentity() first");
    const exp = tokenExpiry(this.token);
    if (exp !== null && exp - Date.now() / 1000 < 60) await this._renewIdentity();
    return this.token;
  }

  async _renewIdentity() {
    if (this._getToken) {
      await this.createIdentity({ appToken: await this._getToken() });
      return;
    }
    const answer = await this._request("POST", "/v1/tokens/refresh", { token: this.token });
    this._setIdentity(this.identityId, answer.token, answer.expires_at);
  }

  _setIdentity(identityId, token, expiresAt) {
    this.identityId = identityId;
    this.token = token;
    this._store("identity", { identityId, token, expiresAt });
  }

  _storageKey(name) {
    return `${STORAGE_PREFIX}${this.url}:${name}`;
  }

  _store(name, value) {
    try {
      if (value === null) this.storage?.removeItem(this._storageKey(name));
      else this.storage?.setItem(this._storageKey(name), JSON.stringify(value));
    } catch {
      // storage full or refused: resuming after a reload is a convenience, never a failure
    }
  }

  _load(name) {
    try {
      const text = this.storage?.getItem(this._storageKey(name));
      return text ? JSON.parse(text) : null;
    } catch {
      return null;
    }
  }

  // ---- identities and sessions ----------------------------------------------------------------

  /** A new anonymous identity, or the identity of an app's user (`appToken`: the app's own JWT). */
  async createIdentity({ displayName, appToken } = {}) {
    const body = displayName === undefined ? {} : { display_name: displayName };
    const answer = await this._request("POST", "/v1/identities", { body, token: appToken });
    this._setIdentity(answer.identity_id, answer.token, answer.expires_at);
    return { identityId: answer.identity_id, token: answer.token, expiresAt: answer.expires_at };
  }

  /** The identity kept in storage by an earlier page load, adopted; null when none is left. */
  restoreIdentity() {
    const saved = this._load("identity");
    const exp = saved && tokenExpiry(saved.token);
    if (!saved || (exp !== null && exp - Date.now() / 1000 < 60)) return null;
    this.identityId = saved.identityId;
    this.token = saved.token;
    return { identityId: saved.identityId, token: saved.token, expiresAt: saved.expiresAt };
  }

  async createSession(options = {}) {
    const body = {};
    for (const [name, field] of [
      ["name", "name"],
      ["maxParticipants", "max_participants"],
      ["idleTimeoutS", "idle_timeout_s"],
      ["ttlS", "ttl_s"],
      ["metadata", "metadata"],
    ]) {
      if (options[name] !== undefined) body[field] = options[name];
    }
    const answer = await this._request("POST", "/v1/sessions", { body, token: await this._identityToken() });
    return { sessionId: answer.session_id, code: answer.code, expiresAt: answer.expires_at };
  }

  /** The session's state as `GET /v1/sessions/{id}` answers it (snake_case). */
  async getSession(sessionId) {
    return this._request("GET", `/v1/sessions/${encodeURIComponent(sessionId)}`, {
      token: await this._identityToken(),
    });
  }

  /** Joins the session and opens its websocket. `after`: replay the events after this sequence number. */
  async joinSession(sessionId, { role, after } = {}) {
    const joined = await this._join(sessionId, role);
    return this._open(joined, { after, role });
  }

  async joinByCode(code, { after } = {}) {
    const answer = await this._request("POST", "/v1/join", {
      body: { code },
      token: await this._identityToken(),
    });
    return this._open(answer, { after });
  }

  async _join(sessionId, role) {
    return this._request("POST", `/v1/sessions/${encodeURIComponent(sessionId)}/join`, {
      body: role === undefined ? {} : { role },
      token: await this._identityToken(),
    });
  }

  _open(answer, { after, role, peerFrom } = {}) {
    const saved = this._load(`session:${answer.session_id}:${answer.participant_id}`);
    const session = new Session(this, {
      sessionId: answer.session_id,
      participantId: answer.participant_id,
      token: answer.token,
      role,
      after: after ?? saved?.seq ?? null,
      afterIdentity: saved?.identitySeq ?? null,
      peerFrom,
    });
    session._connect();
    return session;
  }

  /** An identity-token socket: only this identity's events (`match.found`, `match.ended`). */
  connectIdentity({ after } = {}) {
    const saved = this._load(`identity-stream:${this.identityId}`);
    const session = new Session(this, { token: this.token, after: after ?? saved?.seq ?? null });
    session._connect();
    return session;
  }

  // ---- display pairing ----------------------------------------------------------------------

  /** Registers a display: its code now, `paired` once a controller typed it (SSE, else long-polling). */
  async registerDisplay({ ttlS } = {}) {
    const answer = await this._request("POST", "/v1/displays", {
      body: ttlS === undefined ? {} : { ttl_s: ttlS },
      token: await this._identityToken(),
    });
    const abort = new AbortController();
    let source = null;
    let rejectPaired;
    const paired = new Promise((resolve, reject) => {
      rejectPaired = reject;
      const settle = (event, data) => {
        if (abort.signal.aborted) return;
        abort.abort();
        source?.close();
        source = null;
        if (event === "paired") {
          const session = this._open(answer, {
            after: Math.max(0, (data?.seq ?? 1) - 1), // from the paired event on: nothing sent after it is missed
            peerFrom: "paired",
          });
          resolve(session);
        } else {
          reject(new HearthError("HT410", `the display's code is no longer valid (${data?.reason ?? event})`, 410));
        }
      };
      const path = `/v1/displays/${encodeURIComponent(answer.session_id)}/events`;
      const poll = async () => {
        for (let attempt = 0; !abort.signal.aborted; ) {
          try {
            const result = await this._request("GET", `${path}?wait=25`, {
              token: answer.token,
              signal: abort.signal,
            });
            attempt = 0;
            if (result.event) return settle(result.event, result.data);
          } catch (error) {
            if (abort.signal.aborted) return reject(new HearthError("closed", "the display was closed"));
            if (error.code !== "network" && error.status < 500) return reject(error);
            await sleep(backoffDelay(attempt++, this.reconnectBaseMs, this.reconnectCapMs), abort.signal);
          }
        }
        reject(new HearthError("closed", "the display was closed"));
      };
      if (this._EventSource) {
        source = new this._EventSource(`${this.url}${path}?token=${encodeURIComponent(answer.token)}`);
        const on = (event) => (message) => settle(event, JSON.parse(message.data));
        source.addEventListener("paired", on("paired"));
        source.addEventListener("expired", on("expired"));
        source.onerror = () => {
          // A stream refused or cut by a proxy that buffers it: long-poll instead.
          if (source && source.readyState !== 1) {
            source.close();
            source = null;
            poll();
          }
        };
      } else {
        poll();
      }
    });
    paired.catch(() => {}); // the caller may never wait for it; close() rejects it
    return {
      sessionId: answer.session_id,
      code: answer.code,
      participantId: answer.participant_id,
      expiresAt: answer.expires_at,
      paired,
      close: () => {
        source?.close();
        source = null;
        abort.abort();
        rejectPaired(new HearthError("closed", "the display was closed"));
      },
    };
  }

  /** Pairs with a display's code: the controller's session, accepting signals from the display only. */
  async pair(code) {
    const answer = await this._request("POST", "/v1/pair", {
      body: { code },
      token: await this._identityToken(),
    });
    // From the start of the pairing session: its `session.paired` event names the display.
    return this._open(answer, { after: 0, peerFrom: "paired" });
  }

  // ---- matchmaking --------------------------------------------------------------------------

  /** Queues for a match, waits for `match.found`, joins the match session and fetches its LiveKit token. */
  async findMatch() {
    if (this._matchWait) throw new HearthError("busy", "findMatch() is already waiting");
    // From the head: an earlier match.found replayed from storage must not be taken for this one.
    const stream = new Session(this, { token: this.token });
    stream._connect();
    let cancel;
    const cancelled = new Promise((_, reject) => {
      cancel = reject;
    });
    cancelled.catch(() => {});
    this._matchWait = { cancel: (error) => cancel(error) };
    try {
      const found = new Promise((resolve, reject) => {
        stream.on("match.found", resolve);
        stream.on("closed", ({ error }) => reject(error));
      });
      found.catch(() => {});
      await Promise.race([stream.ready, cancelled]);
      const token = await this._identityToken();
      await Promise.race([this._request("POST", "/v1/match/queue", { token }), cancelled]);
      // A match made before the socket was up is in GET /v1/match; a later one arrives as match.found.
      const now = await this._request("GET", "/v1/match", { token });
      const match =
        now.state === "connecting" || now.state === "in_call"
          ? { match_session_id: now.session_id, peer_identity_id: now.peer }
          : await Promise.race([found, cancelled]);
      const session = await this.joinSession(match.match_session_id);
      let livekit = null;
      try {
        livekit = await this._request(
          "GET",
          `/v1/sessions/${encodeURIComponent(match.match_session_id)}/livekit-token`,
          { token: session.token },
        );
      } catch (error) {
        if (error.status !== 503) {
          session.close();
          throw error;
        }
      }
      const act = (action) => async () => {
        const answer = await this._request(
          "POST",
          `/v1/matches/${encodeURIComponent(match.match_session_id)}/${action}`,
          { token: await this._identityToken() },
        );
        session.close();
        return { state: answer.state };
      };
      return {
        sessionId: match.match_session_id,
        peerIdentityId: match.peer_identity_id,
        session,
        livekit,
        skip: act("skip"),
        end: act("end"),
      };
    } finally {
      this._matchWait = null;
      stream.close();
    }
  }

  /** Leaves the match queue; a waiting findMatch() rejects with code `cancelled`. */
  async leaveQueue() {
    this._matchWait?.cancel(new HearthError("cancelled", "left the match queue"));
    const answer = await this._request("DELETE", "/v1/match/queue", { token: await this._identityToken() });
    return { state: answer.state };
  }

  /** `{state, sessionId?, peer?}` as `GET /v1/match` answers it. */
  async matchState() {
    const answer = await this._request("GET", "/v1/match", { token: await this._identityToken() });
    return { state: answer.state, sessionId: answer.session_id ?? null, peer: answer.peer ?? null };
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}

/** One websocket to a session (session token) or to an identity's own stream (identity token), kept
 * open across reconnects until close(), leave() or a terminal close. */
export class Session extends Emitter {
  constructor(hearth, { sessionId = null, participantId = null, token, role, after, afterIdentity, peerFrom }) {
    super();
    this.hearth = hearth;
    this.sessionId = sessionId;
    this.participantId = participantId;
    this.token = token;
    this.role = role;
    this.lastSeq = after ?? null;
    this.lastIdentitySeq = afterIdentity ?? null;
    this.presence = [];
    this.state = "connecting";
    this.closeReason = null;
    this.peer = null; // the paired side's participant id (pairing sessions)
    this._peerFrom = peerFrom ?? null;
    this._welcomeSeq = 0;
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._pingTimer = null;
    this._renewTimer = null;
    this._refs = 0;
    this._pending = new Map(); // ref -> {frame, resolve, reject, sent}
    this._authFailures = 0;
    this._rejoined = false;
    this._forceUnrecovered = false;
    this._lastFrameAt = 0;
    this._pingSentAt = 0;
    this.ready = new Promise((resolve, reject) => {
      this._readyResolve = resolve;
      this._readyReject = reject;
    });
    this.ready.catch(() => {});
    this._wake = () => this._onWake();
    this._visible = () => {
      if (globalThis.document?.visibilityState !== "hidden") this._onWake();
    };
    this._pageshow = (event) => event.persisted && this._onWake();
    globalThis.addEventListener?.("online", this._wake);
    globalThis.addEventListener?.("pageshow", this._pageshow);
    globalThis.document?.addEventListener?.("visibilitychange", this._visible);
    this._scheduleRenewal();
  }

  get isIdentityStream() {
    return this.sessionId === null;
  }

  // ---- sending ------------------------------------------------------------------------------

  /** A `message` event: resolves with its seq once stored; queued while reconnecting (maxQueued). */
  send(body) {
    return this._sendAcked({ type: "message", body });
  }

  /** A `signal` event to one participant (offer, answer or ice): resolves with its seq once stored. */
  signal(to, kind, data) {
    return this._sendAcked({ type: "signal", to, kind, data });
  }

  /** An ephemeral broadcast to the others now connected: false when not connected (it is dropped). */
  broadcast(body) {
    if (this.state !== "open") return false;
    return this._write({ type: "broadcast", body });
  }

  _sendAcked(frame) {
    if (this.state === "closed") {
      return Promise.reject(new HearthError("closed", "the session is closed"));
    }
    if (this.isIdentityStream) {
      return Promise.reject(new HearthError("HT403", "an identity stream cannot send", 403));
    }
    let waiting = 0;
    for (const entry of this._pending.values()) if (!entry.sent) waiting++;
    if (this.state !== "open" && waiting >= this.hearth.maxQueued) {
      return Promise.reject(new HearthError("queue_full", `${waiting} frames already wait for a connection`));
    }
    const ref = `r${++this._refs}`;
    return new Promise((resolve, reject) => {
      const entry = { frame: { ...frame, ref }, resolve, reject, sent: false };
      this._pending.set(ref, entry);
      if (this.state === "open") entry.sent = this._write(entry.frame);
    });
  }

  _write(frame) {
    try {
      this._ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  // ---- connection ---------------------------------------------------------------------------

  _connect() {
    this._timer = null;
    const WebSocketImpl = this.hearth._WebSocket;
    if (!WebSocketImpl) {
      this._end(0, "no WebSocket implementation: pass options.WebSocket", "unsupported");
      return;
    }
    const params = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null) params.set("after", String(this.lastSeq));
    if (!this.isIdentityStream && this.lastIdentitySeq !== null) {
      params.set("after_identity", String(this.lastIdentitySeq));
    }
    const ws = new WebSocketImpl(`${this.hearth.url.replace(/^http/, "ws")}/v1/ws?${params}`);
    this._ws = ws;
    ws.onmessage = (event) => this._ws === ws && this._onFrame(event.data);
    ws.onclose = (event) => this._ws === ws && this._onClose(event.code, event.reason);
    ws.onerror = () => {}; // a close event follows
  }

  _onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(typeof text === "string" ? text : String(text));
    } catch {
      return;
    }
    this._lastFrameAt = Date.now();
    switch (frame.type) {
      case "welcome":
        return this._onWelcome(frame);
      case "pong":
        return;
      case "ack":
        return this._settle(frame.ref, (entry) => entry.resolve(frame.seq));
      case "error": {
        const error = new HearthError(frame.code, frame.message, Number(String(frame.code).slice(2)) || 0);
        if (frame.ref !== undefined) return this._settle(frame.ref, (entry) => entry.reject(error));
        return this._emit("error", error);
      }
      case "broadcast":
        this._emit("broadcast", frame);
        return this._emit("*", frame);
      default:
        if (typeof frame.seq === "number") this._onEvent(frame);
    }
  }

  _onWelcome(frame) {
    this._attempt = 0;
    this._authFailures = 0;
    this._rejoined = false;
    if (this.isIdentityStream) {
      this.lastSeq = this._resumeFrom(this.lastSeq, frame.seq, frame.recovered);
    } else {
      this.lastSeq = this._resumeFrom(this.lastSeq, frame.seq, frame.recovered);
      this.lastIdentitySeq = this._resumeFrom(this.lastIdentitySeq, frame.identity_seq, frame.recovered);
      this._welcomeSeq = frame.seq;
      this.presence = (frame.presence || []).map((entry) => ({ ...entry }));
      if (this._peerFrom === "presence") this._findPeer();
    }
    this._save();
    this.state = "open";
    this._emit("state", "open");
    if (!this.isIdentityStream) this._emit("presence", this.presence.slice());
    const recovered = frame.recovered !== false && !this._forceUnrecovered;
    this._forceUnrecovered = false;
    this._emit("recovered", recovered);
    this._readyResolve(this);
    for (const entry of this._pending.values()) {
      if (!entry.sent) entry.sent = this._write(entry.frame);
    }
    this._startHeartbeat(frame.heartbeat_interval_s);
  }

  /** Where a stream resumes: our number, unless the server no longer has it (beyond its head). */
  _resumeFrom(ours, head, recovered) {
    if (typeof head !== "number") return ours;
    if (ours === null || (recovered === false && ours > head)) return head;
    return ours;
  }

  _onEvent(frame) {
    const identityEvent = this.isIdentityStream || (frame.session_id === null && frame.identity_id);
    if (identityEvent) {
      if (this.isIdentityStream) {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // seen already
        this.lastSeq = frame.seq;
      } else {
        if (this.lastIdentitySeq !== null && frame.seq <= this.lastIdentitySeq) return;
        this.lastIdentitySeq = frame.seq;
      }
    } else {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
      if (frame.seq > this._welcomeSeq) this._applyPresence(frame);
      if (frame.type === "session.paired" && this._peerFrom === "paired") {
        this.peer =
          frame.display_participant_id === this.participantId
            ? frame.controller_participant_id
            : frame.display_participant_id;
      }
      if (frame.type === "signal" && this._peerFrom && frame.from !== this.peer) {
        this._save();
        return; // a pairing session's signals come from the paired peer only
      }
    }
    this._save();
    this._emit(frame.type, frame);
    this._emit("*", frame);
  }

  _applyPresence(frame) {
    if (frame.type === "presence.join") {
      const entry = {
        participant_id: frame.participant_id,
        identity_id: frame.identity_id,
        role: frame.role,
        display_name: frame.display_name,
        joined_at: frame.at,
      };
      this.presence = this.presence.filter((p) => p.participant_id !== frame.participant_id).concat(entry);
    } else if (frame.type === "presence.leave") {
      this.presence = this.presence.filter((p) => p.participant_id !== frame.participant_id);
    } else {
      return;
    }
    this._emit("presence", this.presence.slice());
  }

  _findPeer() {
    const other = this.presence.find((p) => p.participant_id !== this.participantId);
    if (other) this.peer = other.participant_id;
  }

  _settle(ref, action) {
    const entry = this._pending.get(ref);
    if (!entry) return;
    this._pending.delete(ref);
    action(entry);
  }

  _save() {
    if (this.isIdentityStream) {
      if (this.hearth.identityId) {
        this.hearth._store(`identity-stream:${this.hearth.identityId}`, { seq: this.lastSeq });
      }
    } else {
      this.hearth._store(`session:${this.sessionId}:${this.participantId}`, {
        seq: this.lastSeq,
        identitySeq: this.lastIdentitySeq,
      });
    }
  }

  _startHeartbeat(intervalS) {
    clearInterval(this._pingTimer);
    const ms = Math.max(1, Number(intervalS) || 30) * 1000;
    this._pingTimer = setInterval(() => {
      // No frame since the last ping, a whole interval ago: the connection is dead without a close.
      if (this._pingSentAt && this._lastFrameAt < this._pingSentAt) return this._drop();
      this._ping();
    }, ms);
  }

  _ping() {
    if (this.state !== "open") return;
    this._pingSentAt = Date.now();
    this._write({ type: "ping" });
  }

  /** Back online or visible again: check the connection now, or reconnect now if waiting to. */
  _onWake() {
    if (this.state === "open") {
      this._ping();
      const sentAt = this._pingSentAt;
      clearTimeout(this._wakeTimer);
      this._wakeTimer = setTimeout(() => {
        if (this.state === "open" && this._lastFrameAt < sentAt) this._drop();
      }, 5000);
    } else if (this.state === "reconnecting" && this._timer !== null) {
      clearTimeout(this._timer);
      this._attempt = 0;
      this._connect();
    }
  }

  /** Gives up on a connection that stopped answering, without waiting for its close handshake. */
  _drop() {
    const ws = this._ws;
    this._ws = null;
    try {
      if (ws?.terminate) ws.terminate(); // Node's ws: no close handshake over a dead connection
      else ws?.close();
    } catch {
      // already closing
    }
    this._onClose(1006, "no answer from the server");
  }

  _onClose(code, reason) {
    this._ws = null;
    clearInterval(this._pingTimer);
    clearTimeout(this._wakeTimer);
    this._pingSentAt = 0;
    if (this.state === "closed") return;
    for (const [ref, entry] of this._pending) {
      if (entry.sent) {
        this._pending.delete(ref);
        entry.reject(
          new HearthError("unconfirmed", "the connection closed before the server confirmed this frame"),
        );
      }
    }
    if (TERMINAL.has(code)) return this._end(code, reason);
    if (this.state !== "reconnecting") {
      this.state = "reconnecting";
      this._emit("state", "reconnecting");
    }
    if (code === 4401) return this._recover(() => this._renewToken(), code, reason);
    if (code === 4404) return this._recover(() => this._rejoin(), code, reason);
    // 1012: the instance is draining; spread its clients over a short random delay.
    const delay =
      code === 1012
        ? 100 + Math.random() * 1400
        : backoffDelay(this._attempt++, this.hearth.reconnectBaseMs, this.hearth.reconnectCapMs);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  /** A 4401 or 4404: get a new token (or participant) first; the second in a row ends the session. */
  async _recover(action, code, reason) {
    const counter = code === 4401 ? "_authFailures" : "_rejoined";
    if (this[counter] || (this.isIdentityStream && code === 4404)) return this._end(code, reason);
    this[counter] = true;
    try {
      await action();
    } catch (error) {
      if (this.state === "closed") return;
      if (error.code === "network" || error.status >= 500) {
        this[counter] = false;
        this._timer = setTimeout(
          () => this._onClose(code, reason),
          backoffDelay(this._attempt++, this.hearth.reconnectBaseMs, this.hearth.reconnectCapMs),
        );
        return;
      }
      return this._end(error.status === 410 ? 4410 : code, error.message, error.code);
    }
    if (this.state !== "closed") this._connect();
  }

  async _renewToken() {
    if (this.isIdentityStream) {
      await this.hearth._renewIdentity();
      this.token = this.hearth.token;
      return;
    }
    if (!this.hearth._getToken) {
      try {
        const answer = await this.hearth._request("POST", "/v1/tokens/refresh", { token: this.token });
        this.token = answer.token;
        this._scheduleRenewal();
        return;
      } catch (error) {
        if (error.status !== 401 && error.status !== 404) throw error;
      }
    } else {
      await this.hearth._renewIdentity();
    }
    // The session token expired: join again with the identity (a present participant keeps its id).
    const joined = await this.hearth._join(this.sessionId, this.role);
    if (joined.participant_id !== this.participantId) this._newParticipant(joined.participant_id);
    this.token = joined.token;
    this._scheduleRenewal();
  }

  /** After a 4404: join again as a new participant, resume the stream, report recovered: false. */
  async _rejoin() {
    const joined = await this.hearth._join(this.sessionId, this.role);
    this._newParticipant(joined.participant_id);
    this.token = joined.token;
    this._scheduleRenewal();
  }

  _newParticipant(participantId) {
    this.participantId = participantId;
    this._forceUnrecovered = true;
    this._save();
  }

  /** Renews the socket's token ahead of its expiry, so the next reconnect is not refused. */
  _scheduleRenewal() {
    clearTimeout(this._renewTimer);
    const exp = tokenExpiry(this.token);
    if (exp === null || this.state === "closed") return;
    const life = exp * 1000 - Date.now();
    const wait = Math.max(0, life - Math.min(60000, life / 10));
    if (wait > 2 ** 31 - 1) return; // beyond setTimeout's range: renewed on a later reconnect
    this._renewTimer = setTimeout(() => {
      this._renewTimer = null;
      this._renewToken().catch(() => {}); // a reconnect refused with 4401 tries again
    }, wait);
  }

  /** Closes the socket without leaving: others see this participant until presence_timeout. */
  close() {
    this._end(1000, "closed by the client", "closed", false);
  }

  /** Leaves the session (others get presence.leave), then closes. */
  async leave() {
    if (this.isIdentityStream) return this.close();
    try {
      await this.hearth._request("POST", `/v1/sessions/${encodeURIComponent(this.sessionId)}/leave`, {
        token: this.token,
      });
    } finally {
      this._end(1000, "left the session", "closed");
    }
  }

  _end(code, reason, errorCode, forget = true) {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this._timer);
    clearInterval(this._pingTimer);
    clearTimeout(this._renewTimer);
    clearTimeout(this._wakeTimer);
    this._timer = this._renewTimer = null;
    globalThis.removeEventListener?.("online", this._wake);
    globalThis.removeEventListener?.("pageshow", this._pageshow);
    globalThis.document?.removeEventListener?.("visibilitychange", this._visible);
    const ws = this._ws;
    this._ws = null;
    try {
      ws?.close(1000);
    } catch {
      // closing a socket that never opened
    }
    const text = reason || CLOSE_REASONS[code] || `closed with ${code}`;
    const status = code >= 4000 ? code - 4000 : 0;
    const error = new HearthError(errorCode ?? (status ? `HT${status}` : "closed"), text, status);
    this.closeReason = { code, reason: text, error };
    for (const entry of this._pending.values()) entry.reject(error);
    this._pending.clear();
    this._readyReject(error);
    if (forget && !this.isIdentityStream) {
      this.hearth._store(`session:${this.sessionId}:${this.participantId}`, null);
    }
    this._emit("state", "closed");
    this._emit("closed", this.closeReason);
  }
}
