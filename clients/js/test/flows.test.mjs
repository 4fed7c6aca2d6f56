// Display pairing, matchmaking against the LiveKit double, an app's own tokens through getToken().
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { FetchEventSource, client, next, startServers, until } from "./helpers.mjs";

const APP_SECRET = "app-secret-for-the-js-client-tests-0123456789";
let servers;
before(async () => {
  servers = await startServers({ livekit: true, env: { HEARTH_AUTH_SECRET: APP_SECRET } });
});
after(() => servers.stop());

function appToken(sub, lifetimeS) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + lifetimeS })}`;
  return `${body}.${createHmac("sha256", APP_SECRET).update(body).digest("base64url")}`;
}

test("pairing: the display waits by long-polling (Node has no EventSource), both sides talk", async () => {
  const tv = client(servers.url);
  const phone = client(servers.url);
  await tv.createIdentity({ displayName: "tv" });
  await phone.createIdentity({ displayName: "phone" });
  const display = await tv.registerDisplay({ ttlS: 60 });
  assert.match(display.code, /^[2-9A-HJKMNP-Z]{6}$/);
  const controller = await phone.pair(display.code);
  const screen = await display.paired;
  await Promise.all([controller.ready, screen.ready]);
  // Each learns its peer from the session.paired event (replayed after the welcome).
  await until(() => controller.peer === screen.participantId, 5000, "the controller knows the display");
  await until(() => screen.peer === controller.participantId, 5000, "the display knows the controller");

  const offers = [];
  screen.on("signal", (frame) => offers.push(frame));
  // A signal from anyone but the paired peer is dropped (forged here straight into the stream).
  await servers.sql(
    "SELECT hearth_data.emit_event('session', $1::uuid, 'signal', jsonb_build_object('from', gen_random_uuid(), " +
      "'to', $2::uuid, 'kind', 'offer', 'data', '{\"sdp\": \"forged\"}'::jsonb), now(), true)",
    [screen.sessionId, screen.participantId],
  );
  await controller.signal(screen.participantId, "offer", { sdp: "genuine" });
  await until(() => offers.length >= 1, 5000, "the genuine offer");
  assert.deepEqual(offers.map((f) => f.data.sdp), ["genuine"]);
  assert.ok(screen.lastSeq >= offers[0].seq);

  const hello = next(screen, "message");
  await controller.send({ text: "hi tv" });
  assert.deepEqual((await hello).body, { text: "hi tv" });
  const left = next(screen, "presence.leave");
  await controller.leave();
  assert.equal((await left).participant_id, controller.participantId);
  assert.equal(controller.state, "closed");
  screen.close();
});

test("pairing: a display with an EventSource waits on the event stream", async () => {
  let opened = 0;
  class CountingEventSource extends FetchEventSource {
    constructor(url) {
      super(url);
      opened++;
    }
  }
  const polls = [];
  const fetchSpy = (url, init) => {
    if (String(url).includes("wait=")) polls.push(url);
    return fetch(url, init);
  };
  const tv = client(servers.url, { EventSource: CountingEventSource, fetch: fetchSpy });
  const phone = client(servers.url);
  await tv.createIdentity();
  await phone.createIdentity();
  const display = await tv.registerDisplay();
  const controller = await phone.pair(display.code);
  const screen = await display.paired;
  assert.equal(opened, 1);
  assert.deepEqual(polls, []); // the stream, never the long-poll fallback
  await screen.ready;
  await until(() => screen.peer === controller.participantId, 5000, "the display knows the controller");
  controller.close();
  screen.close();
});

test("a display that is closed stops waiting; an expired code rejects paired", async () => {
  const tv = client(servers.url);
  await tv.createIdentity();
  const display = await tv.registerDisplay();
  display.close();
  await assert.rejects(display.paired, (e) => e.code === "closed");
  const short = await tv.registerDisplay({ ttlS: 1 });
  await servers.sql("SELECT hearth.expire_sessions(now() + interval '2 seconds')");
  await assert.rejects(short.paired, (e) => e.code === "HT410" && e.status === 410);
});

test("findMatch: both sides matched, the match session joined, the LiveKit token; skip", async () => {
  const [ann, ben] = [client(servers.url), client(servers.url)];
  await ann.createIdentity({ displayName: "ann" });
  await ben.createIdentity({ displayName: "ben" });
  const [a, b] = await Promise.all([ann.findMatch(), ben.findMatch()]);
  assert.equal(a.sessionId, b.sessionId);
  assert.equal(a.peerIdentityId, ben.identityId);
  assert.equal(b.peerIdentityId, ann.identityId);
  assert.equal(a.livekit.url, servers.livekit);
  assert.ok(a.livekit.room.length > 0 && a.livekit.token.length > 0);
  await Promise.all([a.session.ready, b.session.ready]);
  const closed = next(b.session, "closed");
  assert.equal((await a.skip()).state, "waiting");
  const reason = await closed; // the match is over for both: no reconnect
  assert.ok([1000, 4410].includes(reason.code), JSON.stringify(reason));
  assert.equal(a.session.state, "closed");
  assert.equal((await ann.leaveQueue()).state, "idle");
  assert.equal((await ben.leaveQueue()).state, "idle");
});

test("getToken: an app's user; Hearth tokens near their expiry are renewed with a new app token", async () => {
  let asked = 0;
  const app = client(servers.url, {
    getToken: async () => {
      asked++;
      return appToken("user-42", 3600);
    },
  });
  // The app's first token expires in 45 s: so does the Hearth token made from it (the cap).
  const me = await app.createIdentity({ appToken: appToken("user-42", 45) });
  const { sessionId } = await app.createSession(); // the token expires within a minute: renewed first
  assert.equal(asked, 1);
  assert.equal(app.identityId, me.identityId); // the same user, the same identity
  const session = await app.joinSession(sessionId);
  await session.ready;
  session.token = "not-a-token"; // refused at the next connect: renewed through getToken, joined again
  const participant = session.participantId;
  const back = next(session, "recovered");
  session._drop();
  assert.equal(await back, true);
  assert.equal(asked, 2);
  assert.equal(session.participantId, participant);
  session.close();
});
