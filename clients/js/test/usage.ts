// Type-checked (tsc --noEmit) against the packed package by pack.test.mjs: every name of the API, so a
// declaration that drifts from the module, or a package that does not ship its types, fails the test.
import {
  Hearth,
  HearthError,
  Session,
  backoffDelay,
  type BroadcastFrame,
  type CloseReason,
  type Display,
  type Frame,
  type Match,
  type MessageFrame,
  type PresenceEntry,
  type SessionState,
  type SignalFrame,
} from "hearth-client";

export async function everything(WebSocketImpl: unknown): Promise<void> {
  const hearth = new Hearth({
    url: "http://127.0.0.1:8000",
    WebSocket: WebSocketImpl,
    fetch: globalThis.fetch,
    EventSource: null,
    getToken: async () => "app-jwt",
    storage: null,
    reconnectBaseMs: 500,
    reconnectCapMs: 20000,
    maxQueued: 100,
  });
  const me = await hearth.createIdentity({ displayName: "Ada" });
  const fromApp = await hearth.createIdentity({ appToken: "app-jwt" });
  const restored = hearth.restoreIdentity();
  const ids: string[] = [me.identityId, me.token, fromApp.expiresAt, restored?.identityId ?? ""];
  const { sessionId, code, expiresAt } = await hearth.createSession({
    name: "room",
    maxParticipants: 8,
    idleTimeoutS: 60,
    ttlS: 600,
    metadata: { topic: "x" },
  });
  const state = await hearth.getSession(sessionId);
  const session: Session = await hearth.joinSession(sessionId, { role: "host", after: 0 });
  const byCode: Session = await hearth.joinByCode(code, { after: 3 });
  const off: () => void = session.on("message", (frame: MessageFrame) => frame.body);
  off();
  session.on("signal", (frame: SignalFrame) => frame.kind);
  session.on("broadcast", (frame: BroadcastFrame) => frame.from);
  session.on("*", (frame: Frame) => frame.type);
  session.on("app.order_ready", (frame: Frame) => frame.seq);
  session.on("presence", (list: PresenceEntry[]) => list.map((p) => p.display_name));
  session.on("state", (s: SessionState) => s === "reconnecting");
  session.on("recovered", (ok: boolean) => ok);
  session.on("closed", (reason: CloseReason) => reason.error.code + reason.reason + reason.code);
  session.on("error", (error: HearthError) => error.status);
  await session.ready;
  const seq: number = await session.send({ text: "hi" });
  const signalled: number = await session.signal("participant", "offer", { sdp: "v=0" });
  const sent: boolean = session.broadcast({ x: 1 });
  const list: PresenceEntry[] = session.presence;
  const numbers: Array<number | null> = [session.lastSeq, session.lastIdentitySeq];
  const fields = [session.participantId, session.sessionId, session.peer, session.closeReason, session.state];
  await session.leave();
  byCode.close();
  const display: Display = await hearth.registerDisplay({ ttlS: 600 });
  const paired: Session = await display.paired;
  display.close();
  const controller: Session = await hearth.pair(display.code);
  const match: Match = await hearth.findMatch();
  const room: string | undefined = match.livekit?.room;
  const states = [(await match.skip()).state, (await match.end()).state, (await hearth.leaveQueue()).state];
  const now = await hearth.matchState();
  const identity: Session = hearth.connectIdentity({ after: 0 });
  identity.on("match.found", (frame) => frame.match_session_id);
  const error = new HearthError("HT404", "no session", 404);
  const delay: number = backoffDelay(3, 500, 20000);
  void [ids, expiresAt, state, seq, signalled, sent, list, numbers, fields, paired, controller, room, states];
  void [now.sessionId, match.peerIdentityId, match.session, error instanceof Error, delay];
}
