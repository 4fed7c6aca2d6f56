// Rooms: join, messages both ways, presence, state, broadcast, terminal closes, bad input.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HearthError } from "../hearth-client.js";
import { fileURLToPath } from "node:url";
import { client, next, runNode, startServers, until } from "./helpers.mjs";

let servers;
before(async () => {
  servers = await startServers();
});
after(() => servers.stop());

async function room(names = ["ada", "bob"]) {
  const clients = names.map(() => client(servers.url));
  await Promise.all(clients.map((c, i) => c.createIdentity({ displayName: names[i] })));
  const { sessionId, code } = await clients[0].createSession({ name: "room" });
  const sessions = [];
  for (const c of clients) {
    const session = await c.joinSession(sessionId);
    await session.ready;
    sessions.push(session);
  }
  return { clients, sessions, sessionId, code };
}

test("join, messages both ways, in order, each resolving with its seq", async () => {
  const { sessions } = await room();
  const [ada, bob] = sessions;
  const seenByBob = [];
  const seenByAda = [];
  bob.on("message", (frame) => seenByBob.push(frame));
  ada.on("message", (frame) => seenByAda.push(frame));
  const seqs = await Promise.all([1, 2, 3].map((n) => ada.send({ n })));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  const reply = await bob.send({ text: "hi ada" });
  assert.equal(typeof reply, "number");
  await until(() => seenByBob.length === 4 && seenByAda.length === 4, 5000, "4 messages each");
  assert.deepEqual(seenByBob.map((f) => f.body), [{ n: 1 }, { n: 2 }, { n: 3 }, { text: "hi ada" }]);
  assert.deepEqual(seenByAda.map((f) => f.seq), seenByBob.map((f) => f.seq));
  assert.equal(seenByBob[0].participant_id, ada.participantId);
  assert.equal(ada.lastSeq, bob.lastSeq);
  ada.close();
  bob.close();
});

test("presence: the list from the welcome, then joins and leaves; states", async () => {
  const { clients, sessions, sessionId } = await room();
  const [ada, bob] = sessions;
  // Ada's welcome came before Bob joined: his presence.join brought him into her list.
  await until(() => ada.presence.length === 2, 5000, "both present");
  assert.deepEqual(ada.presence.map((p) => p.display_name).sort(), ["ada", "bob"]);
  assert.deepEqual(bob.presence.map((p) => p.display_name).sort(), ["ada", "bob"]);
  const carol = client(servers.url);
  await carol.createIdentity({ displayName: "carol" });
  const joined = next(ada, "presence", (list) => list.length === 3);
  const states = [];
  const third = await carol.joinSession(sessionId, { role: "viewer" });
  third.on("state", (s) => states.push(s));
  await third.ready;
  const list = await joined;
  assert.equal(list.find((p) => p.participant_id === third.participantId).role, "viewer");
  assert.equal(third.state, "open");
  const left = next(ada, "presence.leave");
  const shrunk = next(ada, "presence", (l) => l.length === 2);
  await third.leave();
  assert.equal((await left).reason, "left");
  await shrunk;
  assert.deepEqual(states, ["open", "closed"]);
  assert.equal(third.state, "closed");
  assert.equal(third.closeReason.code, 1000);
  void clients;
  ada.close();
  bob.close();
});

test("'*' sees every event and broadcast; broadcasts reach the others only", async () => {
  const { sessions } = await room();
  const [ada, bob] = sessions;
  const all = [];
  bob.on("*", (frame) => all.push(frame.type));
  const got = next(bob, "broadcast");
  assert.equal(ada.broadcast({ x: 1 }), true);
  const frame = await got;
  assert.deepEqual(frame.body, { x: 1 });
  assert.equal(frame.from, ada.participantId);
  await ada.send({ text: "after" });
  await until(() => all.includes("message"), 5000, "message on *");
  assert.deepEqual(all, ["broadcast", "message"]);
  ada.close();
  bob.close();
});

test("a refused send rejects with a HearthError; the socket stays open", async () => {
  const { sessions } = await room(["ada"]);
  const [ada] = sessions;
  const error = await ada.send({ big: "x".repeat(40000) }).catch((e) => e);
  assert.ok(error instanceof HearthError);
  assert.equal(error.code, "HT400");
  assert.equal(error.status, 400);
  assert.equal(typeof (await ada.send({ ok: true })), "number");
  ada.close();
});

test("HTTP errors are HearthErrors with the server's code and status", async () => {
  const c = client(servers.url);
  await c.createIdentity();
  const error = await c.joinSession("00000000-0000-4000-8000-000000000000").catch((e) => e);
  assert.ok(error instanceof HearthError);
  assert.equal(error.code, "HT404");
  assert.equal(error.status, 404);
  const bad = await c.joinByCode("nope").catch((e) => e);
  assert.equal(bad.status, 400);
  const offline = client("http://127.0.0.1:9");
  const down = await offline.createIdentity().catch((e) => e);
  assert.equal(down.code, "network");
});

test("join by code", async () => {
  const { sessions, code, sessionId } = await room(["ada"]);
  const bob = client(servers.url);
  await bob.createIdentity({ displayName: "bob" });
  const session = await bob.joinByCode(code.toLowerCase());
  await session.ready;
  assert.equal(session.sessionId, sessionId);
  session.close();
  sessions[0].close();
});

test("a terminal close (the session ends) ends the session with a reason; no reconnect", async () => {
  const c = client(servers.url);
  await c.createIdentity();
  const { sessionId } = await c.createSession({ ttlS: 1 });
  const ada = await c.joinSession(sessionId);
  await ada.ready;
  const closed = next(ada, "closed");
  const expired = next(ada, "session.expired");
  // Only sessions with a TTL this short are due two seconds from now.
  await servers.sql("SELECT hearth.expire_sessions(now() + interval '2 seconds')");
  assert.equal((await expired).reason, "ttl");
  const reason = await closed;
  assert.equal(reason.code, 4410);
  assert.ok(reason.reason.length > 0);
  assert.equal(reason.error.code, "HT410");
  assert.equal(ada.state, "closed");
  await assert.rejects(ada.send({}), (e) => e instanceof HearthError && e.code === "closed");
});

test("findMatch without LiveKit on the server: livekit is null; leaveQueue cancels a wait", async () => {
  const [ann, ben] = [client(servers.url), client(servers.url)];
  await ann.createIdentity();
  await ben.createIdentity();
  const [a, b] = await Promise.all([ann.findMatch(), ben.findMatch()]);
  assert.equal(a.livekit, null);
  assert.equal(a.sessionId, b.sessionId);
  assert.equal((await b.end()).state, "idle");
  await ann.leaveQueue(); // a went back to the queue after b's end
  const solo = client(servers.url);
  await solo.createIdentity();
  const waiting = solo.findMatch().catch((e) => e);
  await until(async () => (await solo.matchState()).state === "waiting", 5000, "queued");
  assert.equal((await solo.leaveQueue()).state, "idle");
  assert.equal((await waiting).code, "cancelled");
});

test("the server serves this very module at /v1/hearth-client.js", async () => {
  const { readFile } = await import("node:fs/promises");
  const served = await fetch(`${servers.url}/v1/hearth-client.js`);
  assert.equal(served.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(await served.text(), await readFile(new URL("../hearth-client.js", import.meta.url), "utf8"));
});

test("no timer or socket is left after close(): node exits by itself", async () => {
  const script = `
    import { WebSocket } from "ws";
    import { Hearth } from ${JSON.stringify(new URL("../hearth-client.js", import.meta.url).href)};
    const hearth = new Hearth({ url: ${JSON.stringify(servers.url)}, WebSocket });
    await hearth.createIdentity();
    const { sessionId } = await hearth.createSession();
    const session = await hearth.joinSession(sessionId);
    await session.ready;
    await session.send({ text: "bye" });
    const display = await hearth.registerDisplay();
    display.close();
    const waiting = hearth.findMatch().catch((e) => e.code);
    await new Promise((r) => setTimeout(r, 300));
    await hearth.leaveQueue();
    console.log(await waiting);
    session.close();
    console.log("closed");
  `;
  const started = Date.now();
  const { status, out, err } = await runNode(["--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    ms: 15000,
  });
  assert.equal(status, 0, out + err);
  assert.deepEqual(out.trim().split("\n"), ["cancelled", "closed"]);
  assert.ok(Date.now() - started < 15000);
});
