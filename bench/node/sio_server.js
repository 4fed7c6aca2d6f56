// The Socket.IO peer for bench/relay*.py: a Socket.IO 4 server with the Redis adapter
// (@socket.io/redis-adapter over node-redis), websocket transport only.
//
// Usage: node sio_server.js PORT REDIS_URL KEY
// Every client joins the room "session" and gets a "ready" event. A line "B <n> <pad> [<ts>]" on
// stdin makes this instance emit n "message" events to the room through the adapter (so they reach
// the room's members on every instance via Redis), each a Hearth-shaped message frame stamped with
// body.ts = ts (ms since the epoch: when the command was sent), or the time of emission without it. Clients answer nothing; {"type":"ping"} events are
// answered with a pong, like Hearth's.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const [port, redisUrl, key] = [Number(process.argv[2]), process.argv[3], process.argv[4] || "socket.io"];
const SESSION_ID = "5e55e55e-0000-4000-8000-000000000000";
const PARTICIPANT_ID = "9a9a9a9a-0000-4000-8000-000000000000";
let seq = 0;

function now() {
  return performance.timeOrigin + performance.now();
}

function frame(pad, ts) {
  seq += 1;
  return {
    at: new Date().toISOString(),
    seq,
    body: { ts: ts === undefined ? now() : ts, pad },
    type: "message",
    session_id: SESSION_ID,
    participant_id: PARTICIPANT_ID,
  };
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, {
    transports: ["websocket"],
    adapter: createAdapter(pub, sub, { key }),
    serveClient: false,
    perMessageDeflate: false,
  });
  io.on("connection", (socket) => {
    socket.join("session");
    socket.on("ping-frame", () => socket.emit("pong", { type: "pong" }));
    socket.emit("ready");
  });
  server.listen(port, "127.0.0.1", () => process.stdout.write(JSON.stringify({ ev: "listening", port }) + "\n"));

  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const [cmd, n, pad, ts] = line.trim().split(" ");
    if (cmd === "B") {
      const stamp = ts === undefined ? undefined : Number(ts);
      for (let i = 0; i < Number(n); i++) io.to("session").emit("message", frame(pad || "", stamp));
    }
  });
  const stop = async () => {
    io.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    process.exit(0);
  };
  process.stdin.on("end", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
