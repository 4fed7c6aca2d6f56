// Types of hearth-client.js. Frames are as on the wire (snake_case); see README.md.

/** A failure: `code` is the server's (`HT404`, ...) or the client's own (lowercase: `network`, `closed`,
 * `queue_full`, `unconfirmed`, `cancelled`, `busy`, `no_identity`, `unsupported`, `bad_option`);
 * `status` the HTTP status, or for a close code 44xx its xx-derived status (4410 -> 410), else 0. */
export class HearthError extends Error {
  constructor(code: string, message: string, status?: number);
  readonly name: "HearthError";
  code: string;
  status: number;
}

/** Exponential backoff with full jitter: a random delay in [0, min(capMs, baseMs * 2^attempt)) ms. */
export function backoffDelay(attempt: number, baseMs?: number, capMs?: number): number;

/** The part of `sessionStorage` the client uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface HearthOptions {
  /** The server's base URL, e.g. "http://127.0.0.1:8000" (default: the page's origin). */
  url?: string;
  /** A WebSocket class (default: globalThis.WebSocket; in Node 20 pass the `ws` package's). */
  WebSocket?: unknown;
  /** A fetch function (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** An EventSource class for the display's wait (default: globalThis.EventSource; null: long-poll). */
  EventSource?: unknown;
  /** Resolves to the app's own JWT for its user: called to renew Hearth's tokens instead of the refresh route. */
  getToken?: () => Promise<string>;
  /** Where sequence numbers and the identity survive a reload (default: sessionStorage; null: nowhere). */
  storage?: StorageLike | null;
  /** An identity token to use (e.g. kept by the app). */
  token?: string;
  /** Backoff base, ms (default 500). */
  reconnectBaseMs?: number;
  /** Backoff cap, ms (default 20000). */
  reconnectCapMs?: number;
  /** Sends waiting for a connection, per session (default 100); more reject with `queue_full`. */
  maxQueued?: number;
}

export interface Identity {
  identityId: string;
  token: string;
  expiresAt: string;
}

export interface NewSession {
  sessionId: string;
  code: string;
  expiresAt: string | null;
}

export interface SessionOptions {
  name?: string;
  maxParticipants?: number;
  idleTimeoutS?: number;
  ttlS?: number;
  metadata?: Record<string, unknown>;
}

export interface PresenceEntry {
  participant_id: string;
  identity_id: string;
  role: string;
  display_name: string | null;
  joined_at: string;
}

/** An event or a broadcast as on the wire: `type`, `seq` (events), `session_id`, `at`, and its fields. */
export interface Frame {
  type: string;
  seq?: number;
  session_id?: string | null;
  at?: string;
  [field: string]: unknown;
}

export interface MessageFrame extends Frame {
  type: "message";
  seq: number;
  participant_id: string;
  body: Record<string, unknown>;
}

export interface SignalFrame extends Frame {
  type: "signal";
  seq: number;
  from: string;
  to: string;
  kind: SignalKind;
  data: Record<string, unknown>;
}

export interface BroadcastFrame extends Frame {
  type: "broadcast";
  from: string;
  body: Record<string, unknown>;
}

export interface MatchFoundFrame extends Frame {
  type: "match.found";
  seq: number;
  match_session_id: string;
  peer_identity_id: string;
}

export type SignalKind = "offer" | "answer" | "ice";
export type SessionState = "connecting" | "open" | "reconnecting" | "closed";

export interface CloseReason {
  /** The close code (1000, 4400, 4401, 4403, 4404, 4410), or 0 when the client could not connect at all. */
  code: number;
  /** Something to show: the server's close reason, or the client's. */
  reason: string;
  error: HearthError;
}

export interface SessionEvents {
  message: MessageFrame;
  signal: SignalFrame;
  broadcast: BroadcastFrame;
  "match.found": MatchFoundFrame;
  "*": Frame;
  presence: PresenceEntry[];
  state: SessionState;
  recovered: boolean;
  closed: CloseReason;
  error: HearthError;
}

/** A websocket to a session (or an identity's own stream), kept open across reconnects. */
export class Session {
  readonly hearth: Hearth;
  /** null on an identity stream. */
  readonly sessionId: string | null;
  readonly participantId: string | null;
  /** The token the socket connects with (renewed before it expires). */
  readonly token: string;
  /** The session stream's last event delivered (the identity stream's, on an identity stream). */
  readonly lastSeq: number | null;
  /** The identity stream's last event delivered on a session socket. */
  readonly lastIdentitySeq: number | null;
  /** Who is present now (you included). */
  readonly presence: PresenceEntry[];
  readonly state: SessionState;
  /** Set once the session is closed. */
  readonly closeReason: CloseReason | null;
  /** Pairing sessions: the paired side's participant id, once known. */
  readonly peer: string | null;
  /** Resolves on the first welcome; rejects with a HearthError if the session ends before it. */
  readonly ready: Promise<Session>;
  readonly isIdentityStream: boolean;

  on<K extends keyof SessionEvents>(type: K, handler: (value: SessionEvents[K]) => void): () => void;
  on(type: string, handler: (frame: Frame) => void): () => void;
  off(type: string, handler: (value: never) => void): void;

  /** A `message` event; resolves with its seq once stored. Queued while reconnecting. */
  send(body: Record<string, unknown>): Promise<number>;
  /** A `signal` event to one participant; resolves with its seq once stored. */
  signal(to: string, kind: SignalKind, data: Record<string, unknown>): Promise<number>;
  /** An ephemeral broadcast; false when not connected (dropped, never queued). */
  broadcast(body: Record<string, unknown>): boolean;
  /** Leaves the session (presence.leave for the others), then closes. */
  leave(): Promise<void>;
  /** Closes without leaving. */
  close(): void;
}

export interface Display {
  sessionId: string;
  code: string;
  participantId: string;
  expiresAt: string;
  /** The display's session once a controller paired; rejects (HT410) when the code expired. */
  paired: Promise<Session>;
  /** Stops waiting (`paired` rejects with code `closed`). */
  close(): void;
}

export interface LiveKitAccess {
  url: string;
  room: string;
  token: string;
}

export interface Match {
  sessionId: string;
  peerIdentityId: string;
  session: Session;
  /** null when the server has no LiveKit configured. */
  livekit: LiveKitAccess | null;
  skip(): Promise<{ state: string }>;
  end(): Promise<{ state: string }>;
}

export interface MatchState {
  state: "idle" | "waiting" | "connecting" | "in_call" | string;
  sessionId: string | null;
  peer: string | null;
}

export class Hearth {
  constructor(options?: HearthOptions);
  readonly url: string;
  identityId: string | null;
  /** The identity token. */
  token: string | null;
  storage: StorageLike | null;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  maxQueued: number;

  createIdentity(options?: { displayName?: string; appToken?: string }): Promise<Identity>;
  /** The identity an earlier page load kept in storage (adopted), or null. */
  restoreIdentity(): Identity | null;
  createSession(options?: SessionOptions): Promise<NewSession>;
  getSession(sessionId: string): Promise<Record<string, unknown>>;
  joinSession(sessionId: string, options?: { role?: string; after?: number }): Promise<Session>;
  joinByCode(code: string, options?: { after?: number }): Promise<Session>;
  /** A socket on the identity's own stream (`match.found`, `match.ended`). */
  connectIdentity(options?: { after?: number }): Session;
  registerDisplay(options?: { ttlS?: number }): Promise<Display>;
  pair(code: string): Promise<Session>;
  findMatch(): Promise<Match>;
  leaveQueue(): Promise<{ state: string }>;
  matchState(): Promise<MatchState>;
}
