// Rooms: join, messages both ways, presence, state, broadcast, terminal closes, bad input.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HearthError } from "../hearth-client.js";
import { client, next, startServers, until } from "./helpers.mjs";

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
  assert.deepEqual(ada.presence.map((p) => p.display_name).sort(), ["ada", "bob"]);
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
