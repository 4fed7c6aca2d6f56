// Reconnects and resume through a round-robin TCP proxy in front of instances, as behind a load balancer:
// a draining instance (1012), a killed one (SIGKILL), pruned events (recovered: false), a swept participant
// (4404), refused tokens (4401).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { client, next, roundRobinProxy, startServers, until } from "./helpers.mjs";

let servers;
before(async () => {
  servers = await startServers({ instances: 1 });
});
after(() => servers.stop());

const fast = { reconnectBaseMs: 100, reconnectCapMs: 1000 };

/** A room with a reader (through `url`) and a writer (through `writerUrl`). */
async function room(url, writerUrl = url) {
  const reader = client(url, fast);
  const writer = client(writerUrl, fast);
  await reader.createIdentity({ displayName: "reader" });
  await writer.createIdentity({ displayName: "writer" });
  const { sessionId } = await writer.createSession({ name: "resume" });
  const inbox = await reader.joinSession(sessionId);
  const outbox = await writer.joinSession(sessionId);
  await Promise.all([inbox.ready, outbox.ready]);
  const seen = [];
  inbox.on("message", (frame) => seen.push(frame.body.n));
  const states = [];
  inbox.on("state", (s) => states.push(s));
  const recovered = [];
  inbox.on("recovered", (ok) => recovered.push(ok));
  return { reader, writer, sessionId, inbox, outbox, seen, states, recovered };
}

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

test("an instance that drains (1012) and one killed (SIGKILL): every message once, in order", async () => {
  const a = servers.instances[0];
  const b = await servers.startInstance();
  const proxy = await roundRobinProxy([a.url]); // every socket on instance a
  try {
    const r = await room(proxy.url, b.url);
    proxy.setUpstreams([a.url, b.url]); // a refuses once it is down: the next connection goes to b
    const writing = (async () => {
      for (const n of range(1, 60)) {
        await r.outbox.send({ n });
        await new Promise((ok) => setTimeout(ok, 15));
      }
    })();
    await until(() => r.seen.length >= 10, 10000, "10 messages before the kill");
    await servers.kill(a.index, "KILL");
    await writing;
    await until(() => r.seen.length >= 60, 20000, "all 60 messages");
    assert.deepEqual(r.seen, range(1, 60));
    assert.ok(r.states.includes("reconnecting"), r.states.join());
    assert.equal(r.inbox.state, "open");
    assert.deepEqual(r.recovered, [true]);

    // Now b drains: its sockets close with 1012 and come back (to the new instance c) after a short delay.
    const c = await servers.startInstance();
    proxy.setUpstreams([c.url]);
    const direct = client(c.url, fast);
    await direct.createIdentity();
    const other = await direct.joinSession(r.sessionId);
    await other.ready;
    const reopened = next(r.inbox, "recovered");
    await servers.kill(b.index, "TERM");
    for (const n of range(61, 70)) await other.send({ n });
    assert.equal(await reopened, true);
    await until(() => r.seen.length >= 70, 10000, "70 messages");
    assert.deepEqual(r.seen, range(1, 70));
    r.inbox.close();
    other.close();
    r.outbox.close();
  } finally {
    await proxy.close();
  }
});

test("sends while reconnecting are queued and sent after the resume; the queue is bounded", async () => {
  const url = servers.instances.at(-1).url; // the instance the previous test started last
  const proxy = await roundRobinProxy([url]);
  try {
    const writer = client(proxy.url, { ...fast, maxQueued: 5 });
    const reader = client(url, fast);
    await writer.createIdentity();
    await reader.createIdentity();
    const { sessionId } = await writer.createSession();
    const out = await writer.joinSession(sessionId);
    const inbox = await reader.joinSession(sessionId);
    await Promise.all([out.ready, inbox.ready]);
    const seen = [];
    inbox.on("message", (frame) => seen.push(frame.body.n));
    proxy.refusing = true;
    const away = next(out, "state", (s) => s === "reconnecting");
    proxy.cut();
    await away;
    const sends = range(1, 5).map((n) => out.send({ n }));
    const full = await out.send({ n: 6 }).catch((e) => e);
    assert.equal(full.code, "queue_full");
    assert.equal(out.broadcast({ lost: true }), false);
    proxy.refusing = false;
    const seqs = await Promise.all(sends);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    await until(() => seen.length === 5, 10000, "5 queued messages");
    assert.deepEqual(seen, range(1, 5));
    out.close();
    inbox.close();
  } finally {
    await proxy.close();
  }
});

test("events pruned while away: the welcome says recovered: false, the client says so", async () => {
  const url = servers.instances.at(-1).url;
  const proxy = await roundRobinProxy([url]);
  try {
    const r = await room(proxy.url, url);
    proxy.refusing = true;
    const away = next(r.inbox, "state", (s) => s === "reconnecting");
    proxy.cut();
    await away;
    for (const n of range(1, 3)) await r.outbox.send({ n });
    await servers.sql("SELECT hearth.prune_events(interval '1 microsecond')");
    await r.outbox.send({ n: 4 });
    const recovered = next(r.inbox, "recovered");
    proxy.refusing = false;
    assert.equal(await recovered, false);
    await until(() => r.seen.includes(4), 10000, "the message after the prune");
    assert.deepEqual(r.seen, [4]); // 1-3 are gone; 4 was kept
    assert.deepEqual(r.recovered, [false]); // the listener came after the first welcome
    r.inbox.close();
    r.outbox.close();
  } finally {
    await proxy.close();
  }
});

test("swept while away (4404): joins again once as a new participant, recovered: false", async () => {
  const url = servers.instances.at(-1).url;
  const proxy = await roundRobinProxy([url]);
  try {
    const r = await room(proxy.url, url);
    const before = r.inbox.participantId;
    const recovered = next(r.inbox, "recovered");
    // Everyone's heartbeat is a day old from there: both participants are removed, their sockets get 4404.
    await servers.sql("SELECT hearth.sweep_presence(NULL, now() + interval '1 day')");
    assert.equal(await recovered, false);
    assert.notEqual(r.inbox.participantId, before);
    assert.ok(r.inbox.presence.some((p) => p.participant_id === r.inbox.participantId));
    await until(() => r.outbox.state === "open" && r.outbox.participantId !== null, 10000, "writer back");
    await r.outbox.send({ n: 1 });
    await until(() => r.seen.includes(1), 10000, "a message after the rejoin");
    r.inbox.close();
    r.outbox.close();
  } finally {
    await proxy.close();
  }
});

test("a refused session token (4401) is renewed; refused again with no way to renew, the session ends", async () => {
  const url = servers.instances.at(-1).url;
  const proxy = await roundRobinProxy([url]);
  try {
    const r = await room(proxy.url, url);
    const participant = r.inbox.participantId;
    r.inbox.token = "not-a-token";
    const back = next(r.inbox, "recovered");
    proxy.cut();
    assert.equal(await back, true);
    assert.equal(r.inbox.participantId, participant); // joined again while present: the same participant
    assert.notEqual(r.inbox.token, "not-a-token");

    r.inbox.token = "not-a-token";
    r.reader.token = "not-an-identity-token-either";
    const closed = next(r.inbox, "closed");
    proxy.cut();
    const reason = await closed;
    assert.equal(reason.code, 4401);
    assert.equal(reason.error.status, 401);
    r.outbox.close();
  } finally {
    await proxy.close();
  }
});
