// Load generator for bench/primary_limits.py: N `ws` clients in this one process, each posting durable
// `message` frames to its session, closed loop: each keeps `window` frames with a `ref` awaiting their
// `ack` (the ack comes once the event is committed, so acks/s are durable events/s).
//
// Usage: node posters.js CONFIG.json
//   {"urls": ["ws://...?token=..."], "window": 4, "report_ms": 100, "concurrency": 100, "pad": "xxx"}
// Output, one JSON object per line on stdout:
//   {"ev":"ready","n":N,"failed":F,"ms":T}           once every client has its welcome (or failed)
//   {"ev":"stats","acks":A,"errors":E,"delivered":D,"open":O,"closed":C,"codes":{...}}  every report_ms
// Commands on stdin, one per line: "go" (start posting), "stop" (stop sending; in-flight frames still
// count when acked), "quit".
"use strict";

const fs = require("fs");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const count = config.urls.length;
const concurrency = config.concurrency || 100;
const windowSize = config.window || 4;
const pad = config.pad || "";
const clients = new Array(count);
const inFlight = new Int32Array(count);
let posting = false;
let acks = 0;
let errors = 0;
let delivered = 0;
let open = 0;
let closed = 0;
let nextRef = 0;
const codes = {};

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fill(i) {
  const ws = clients[i];
  while (posting && inFlight[i] < windowSize && ws.readyState === WebSocket.OPEN) {
    inFlight[i] += 1;
    nextRef += 1;
    ws.send(`{"type":"message","ref":"r${nextRef}","body":{"ts":${Date.now()},"pad":"${pad}"}}`);
  }
}

function connect(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(config.urls[i], { perMessageDeflate: false });
    clients[i] = ws;
    let ready = false;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (!ready) {
        ready = true;
        open += 1;
        resolve(true);
        return;
      }
      if (frame.type === "ack") {
        acks += 1;
        inFlight[i] -= 1;
        fill(i);
      } else if (frame.type === "error") {
        errors += 1;
        codes[frame.code] = (codes[frame.code] || 0) + 1;
        if (frame.ref !== undefined) {
          inFlight[i] -= 1;
          fill(i);
        }
      } else if (frame.type === "message") {
        delivered += 1;
      }
    });
    ws.on("close", (code) => {
      if (ready) {
        closed += 1;
        open -= 1;
        codes[code] = (codes[code] || 0) + 1;
      } else resolve(false);
    });
    ws.on("error", () => {
      if (!ready) resolve(false);
    });
  });
}

async function connectAll() {
  const started = Date.now();
  let next = 0;
  let failed = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      if (!(await connect(i))) failed += 1;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  emit({ ev: "ready", n: count - failed, failed, ms: Date.now() - started });
}

function quit() {
  for (const c of clients) {
    if (!c) continue;
    try {
      c.terminate();
    } catch (e) {
      // already gone
    }
  }
  setTimeout(() => process.exit(0), 100);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "go") {
    posting = true;
    for (let i = 0; i < count; i++) if (clients[i]) fill(i);
  } else if (cmd === "stop") posting = false;
  else if (cmd === "quit") quit();
});
process.stdin.on("end", quit);

setInterval(() => emit({ ev: "stats", acks, errors, delivered, open, closed, codes }), config.report_ms || 100);
connectAll();
