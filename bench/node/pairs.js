// Load generator for bench/relay_broadcast.py: sockets that send frames at a fixed rate and sockets
// that receive them, in one process, with the latency of every frame received.
//
// Usage: node pairs.js CONFIG.json
//   {"senders": ["ws://...?token=..."], "receivers": ["ws://...?token=..."], "concurrency": 100}
// A socket is ready at its first frame (Hearth's welcome). Senders only send (what they receive is
// ignored, but for the pongs of a "ping" run, counted); receivers count and time the frames of the kind
// being run.
// Commands on stdin, one per line:
//   "run KIND RATE SECONDS PAD"  every sender sends {"type": KIND, "body": {"ts": now, "pad": "x"*PAD}}
//                                RATE times a second (staggered) for SECONDS, then waits 1 s for the
//                                last frames; emits {"ev":"done", ...}
//   "quit"
// Output, one JSON object per line on stdout:
//   {"ev":"ready","n":N,"failed":F,"ms":T}
//   {"ev":"done","kind":K,"sent":S,"received":R,"errors":{code:n},"closed":C,"codes":{...},
//    "hist":[...],"over":[...]}   latencies: hist[i] frames in [i/20, (i+1)/20) ms below 1 s, the rest in over
"use strict";

const fs = require("fs");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const concurrency = config.concurrency || 100;
const BUCKETS_PER_MS = 20;
const HIST_MS = 1000;

let kind = null;
let since = Infinity;
let received = 0;
let hist = new Uint32Array(HIST_MS * BUCKETS_PER_MS);
let over = [];
let errors = {};
let closed = 0;
const codes = {};

function now() {
  return performance.timeOrigin + performance.now();
}

function connect(url, receiver) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    let ready = false;
    ws.on("message", (data) => {
      if (!ready) {
        ready = true;
        resolve(ws);
        return;
      }
      const frame = JSON.parse(data.toString());
      if (frame.type === "pong" && kind === "ping") {
        received += 1; // the floor round: a pong per frame, back to its sender
        return;
      }
      if (frame.type === "error") {
        errors[frame.code] = (errors[frame.code] || 0) + 1;
        return;
      }
      if (!receiver || frame.type !== kind || !frame.body || frame.body.ts < since) return;
      received += 1;
      const ms = now() - frame.body.ts;
      const bucket = Math.floor(ms * BUCKETS_PER_MS);
      if (bucket < hist.length) hist[Math.max(0, bucket)] += 1;
      else over.push(ms);
    });
    ws.on("close", (code) => {
      if (ready) {
        closed += 1;
        codes[code] = (codes[code] || 0) + 1;
      } else resolve(null);
    });
    ws.on("error", () => {
      if (!ready) resolve(null);
    });
  });
}

async function connectAll(urls, receiver) {
  const sockets = new Array(urls.length);
  let next = 0;
  async function worker() {
    while (next < urls.length) {
      const i = next++;
      sockets[i] = await connect(urls[i], receiver);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker));
  return sockets;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function run(senders, runKind, rate, seconds, pad) {
  kind = runKind;
  received = 0;
  hist = new Uint32Array(HIST_MS * BUCKETS_PER_MS);
  over = [];
  errors = {};
  since = now();
  const padding = "x".repeat(pad);
  const intervalMs = 1000 / rate;
  let sent = 0;
  const end = now() + seconds * 1000;
  const timers = [];
  await new Promise((resolve) => {
    let running = senders.length;
    if (running === 0) setTimeout(resolve, seconds * 1000); // receivers only (an odd sender count split over two)
    senders.forEach((ws, i) => {
      const start = setTimeout(() => {
        let due = now();
        const tick = () => {
          // Catch up on missed ticks (timers run late under load), never send ahead.
          const t = now();
          while (due <= t && due < end) {
            if (ws && ws.readyState === WebSocket.OPEN) {
              ws.send(JSON.stringify({ type: runKind, body: { ts: now(), pad: padding } }));
              sent += 1;
            }
            due += intervalMs;
          }
          if (due >= end) {
            clearInterval(timers[i]);
            if (--running === 0) resolve();
          }
        };
        tick();
        timers[i] = setInterval(tick, Math.max(1, intervalMs / 2));
      }, (i / senders.length) * intervalMs);
      timers.push(start);
    });
  });
  await new Promise((r) => setTimeout(r, 1000));
  kind = null;
  emit({ ev: "done", kind: runKind, sent, received, errors, closed, codes, hist: Array.from(hist), over });
}

async function main() {
  const started = Date.now();
  const senders = await connectAll(config.senders, false);
  const receivers = await connectAll(config.receivers, true);
  const failed = [...senders, ...receivers].filter((s) => s === null).length;
  emit({ ev: "ready", n: senders.length + receivers.length - failed, failed, ms: Date.now() - started });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === "run") {
      await run(senders, args[0], Number(args[1]), Number(args[2]), Number(args[3] || 0));
    } else if (cmd === "quit") {
      break;
    }
  }
  for (const s of [...senders, ...receivers]) if (s) s.terminate();
  process.exit(0);
}

main();
