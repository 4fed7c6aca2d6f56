// Load generator for bench/relay*.py: N websocket clients (`ws`) or Socket.IO clients
// (`socket.io-client`, websocket transport only) in this one process.
//
// Usage: node clients.js CONFIG.json
//   {"mode": "ws" | "sio",
//    "urls": ["ws://...?token=..."],            // ws: one URL per client
//    "url": "http://127.0.0.1:PORT", "count": N,  // sio: one server, N clients
//    "concurrency": 100,                          // connection attempts in flight
//    "ping_interval_s": 0,                        // > 0: send {"type":"ping"} this often, staggered
//    "report_ms": 50,
//    "latency": false}                            // keep now - body.ts per delivered message
//
// A client is "ready" at its first frame (ws: Hearth's welcome, the peers' hello) or at the
// Socket.IO "ready" event. Every delivered `message` frame is JSON-parsed, like a real client would.
// Output, one JSON object per line on stdout:
//   {"ev":"ready","n":N,"failed":F,"ms":T}            once every client is ready (or failed)
//   {"ev":"stats","total":X,"min":Y,"open":O,"closed":C,"codes":{...},"pongs":P,"pings":Q}
//                                                      every report_ms
//   {"ev":"latency","n":K,"p50":..,"p90":..,"p99":..,"p999":..,"max":..}  on the "latency" command
// Commands on stdin, one per line: "reset [SINCE]" (forget latency samples; keep only messages
// stamped at or after SINCE, ms since the epoch), "latency [UNTIL]" (over the messages stamped at or
// before UNTIL), "quit".
"use strict";

const fs = require("fs");
const readline = require("readline");
const WebSocket = require("ws");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const mode = config.mode || "ws";
const count = mode === "ws" ? config.urls.length : config.count;
const concurrency = config.concurrency || 100;
const reportMs = config.report_ms || 50;
const pingIntervalMs = (config.ping_interval_s || 0) * 1000;
const keepLatency = !!config.latency;

const received = new Float64Array(count);
let total = 0;
let open = 0;
let closed = 0;
let pongs = 0;
let pingsSent = 0;
const codes = {};
let samples = new Float64Array(1 << 20); // latency of each delivered message, ms
let stamps = new Float64Array(1 << 20); // its body.ts
let nSamples = 0;
let since = 0;
const clients = new Array(count);
const timers = [];

function now() {
  return performance.timeOrigin + performance.now();
}

function onMessage(i, frame) {
  if (frame.type === "message") {
    received[i] += 1;
    total += 1;
    if (keepLatency && frame.body && typeof frame.body.ts === "number" && frame.body.ts >= since) {
      if (nSamples === samples.length) {
        const bigger = new Float64Array(samples.length * 2);
        bigger.set(samples);
        samples = bigger;
        const biggerStamps = new Float64Array(stamps.length * 2);
        biggerStamps.set(stamps);
        stamps = biggerStamps;
      }
      stamps[nSamples] = frame.body.ts;
      samples[nSamples++] = now() - frame.body.ts;
    }
  } else if (frame.type === "pong") {
    pongs += 1;
  }
}

function onClose(code) {
  closed += 1;
  open -= 1;
  codes[code] = (codes[code] || 0) + 1;
}

function startPings(i, send) {
  if (!pingIntervalMs) return;
  const first = Math.random() * pingIntervalMs;
  const t = setTimeout(() => {
    const tick = () => {
      pingsSent += 1;
      send('{"type":"ping"}');
    };
    tick();
    timers.push(setInterval(tick, pingIntervalMs));
  }, first);
  timers.push(t);
}

function connectWs(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(config.urls[i], { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    clients[i] = ws;
    let ready = false;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (!ready) {
        ready = true;
        open += 1;
        startPings(i, (text) => ws.readyState === WebSocket.OPEN && ws.send(text));
        resolve(true);
        if (frame.type !== "message") return;
      }
      onMessage(i, frame);
    });
    ws.on("close", (code) => {
      if (ready) onClose(code);
      else resolve(false);
    });
    ws.on("error", () => {
      if (!ready) resolve(false);
    });
  });
}

function connectSio(i) {
  const { io } = require("socket.io-client");
  return new Promise((resolve) => {
    const socket = io(config.url, {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: 30000,
    });
    clients[i] = socket;
    let ready = false;
    socket.on("ready", () => {
      if (ready) return;
      ready = true;
      open += 1;
      resolve(true);
    });
    socket.on("message", (frame) => onMessage(i, frame));
    socket.on("disconnect", (reason) => {
      if (ready) onClose(reason);
    });
    socket.on("connect_error", () => {
      if (!ready) resolve(false);
    });
  });
}

async function connectAll() {
  const started = Date.now();
  let next = 0;
  let failed = 0;
  const connect = mode === "ws" ? connectWs : connectSio;
  async function worker() {
    while (next < count) {
      const i = next++;
      if (!(await connect(i))) failed += 1;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  emit({ ev: "ready", n: count - failed, failed, ms: Date.now() - started });
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function report() {
  let min = Infinity;
  for (let i = 0; i < count; i++) if (received[i] < min) min = received[i];
  emit({ ev: "stats", total, min: count ? min : 0, open, closed, codes, pongs, pings: pingsSent });
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function latency(until) {
  let kept = samples.slice(0, nSamples);
  if (until !== undefined) kept = kept.filter((_, i) => stamps[i] <= until);
  const sorted = kept.sort();
  emit({
    ev: "latency",
    n: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted.length ? sorted[sorted.length - 1] : null,
  });
}

function quit() {
  for (const t of timers) clearTimeout(t);
  for (const c of clients) {
    if (!c) continue;
    try {
      if (mode === "ws") c.terminate();
      else c.disconnect();
    } catch (e) {
      // already gone
    }
  }
  setTimeout(() => process.exit(0), 100);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, arg] = line.trim().split(" ");
  if (cmd === "reset") {
    nSamples = 0;
    since = arg === undefined ? 0 : Number(arg);
  } else if (cmd === "latency") latency(arg === undefined ? undefined : Number(arg));
  else if (cmd === "quit") quit();
});
process.stdin.on("end", quit);

setInterval(report, reportMs);
connectAll();
