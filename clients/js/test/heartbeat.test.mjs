// Heartbeats: a ping every heartbeat interval (1 s on these servers), and a connection that stops answering
// without closing (a dead network path) is given up and replaced, resuming where it was.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { client, next, roundRobinProxy, startServers, until } from "./helpers.mjs";

let servers;
before(async () => {
  servers = await startServers({ settings: { heartbeat_interval: "1 second" } });
});
after(() => servers.stop());

test("a ping every heartbeat interval; a silent connection is dropped and the session resumes", async () => {
  const sent = [];
  class RecordingWebSocket extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data).type);
      super.send(data);
    }
  }
  const proxy = await roundRobinProxy([servers.url]);
  try {
    const reader = client(proxy.url, { WebSocket: RecordingWebSocket, reconnectBaseMs: 100 });
    const writer = client(servers.url);
    await reader.createIdentity();
    await writer.createIdentity();
    const { sessionId } = await writer.createSession();
    const inbox = await reader.joinSession(sessionId);
    const out = await writer.joinSession(sessionId);
    await Promise.all([inbox.ready, out.ready]);
    await until(() => sent.filter((t) => t === "ping").length >= 2, 5000, "two pings");

    const seen = [];
    inbox.on("message", (frame) => seen.push(frame.body.n));
    const states = [];
    inbox.on("state", (s) => states.push(s));
    const back = next(inbox, "recovered", () => true, 15000);
    proxy.freeze(); // nothing arrives any more, nothing closes
    for (const n of [1, 2, 3]) await out.send({ n });
    assert.equal(await back, true);
    assert.deepEqual(states, ["reconnecting", "open"]);
    await until(() => seen.length === 3, 5000, "the messages sent while frozen");
    assert.deepEqual(seen, [1, 2, 3]);
    inbox.close();
    out.close();
  } finally {
    await proxy.close();
  }
});
