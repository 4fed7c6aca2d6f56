// What the tests share: the harness's control calls, a Hearth for Node, waiting for events, a TCP proxy.
import net from "node:net";
import { WebSocket } from "ws";
import { Hearth } from "../hearth-client.js";

const control = process.env.HEARTH_HARNESS;
if (!control) throw new Error("run the tests with `npm test` (test/run.mjs starts the servers)");

export async function harness(path, body = {}) {
  const response = await fetch(control + path, { method: "POST", body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`harness ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** A database of its own and `instances` servers on it: {id, instances: [{url, pid, index}], stop()}. */
export async function startServers({ instances = 1, env = {}, settings = {}, livekit = false } = {}) {
  const setup = await harness("/start", { instances, env, settings, livekit });
  setup.url = setup.instances[0].url;
  setup.stop = () => harness("/stop", { id: setup.id });
  setup.kill = (index, signal = "KILL") => harness("/signal", { id: setup.id, index, signal });
  setup.sql = (sql, args = []) => harness("/sql", { id: setup.id, sql, args });
  setup.startInstance = async () => {
    const instance = await harness("/instance", { id: setup.id });
    setup.instances.push(instance);
    return instance;
  };
  return setup;
}

export function client(url, options = {}) {
  return new Hearth({ url, WebSocket, storage: null, ...options });
}

/** Resolves with the first `type` value matching `predicate` (rejects after `ms`). */
export function next(emitter, type, predicate = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} within ${ms} ms`));
    }, ms);
    const off = emitter.on(type, (value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

export async function until(check, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A memory sessionStorage. */
export class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

/** A round-robin TCP proxy in front of servers (URLs), as a load balancer: a connection goes to the next
 * one that accepts it. `cut()` drops every connection, `freeze()` silences them; while `refusing`, new ones
 * are dropped at once. */
export async function roundRobinProxy(urls) {
  let upstreams = urls.map((url) => Number(new URL(url).port));
  const sockets = new Set();
  const pairs = new Set();
  let turn = 0;
  const proxy = { refusing: false };
  const server = net.createServer((downstream) => {
    if (proxy.refusing) return downstream.destroy();
    sockets.add(downstream);
    downstream.on("close", () => sockets.delete(downstream));
    downstream.pause();
    const tryUpstream = (tries) => {
      const port = upstreams[turn++ % upstreams.length];
      const upstream = net.connect(port, "127.0.0.1");
      let connected = false;
      upstream.once("connect", () => {
        connected = true;
        sockets.add(upstream);
        upstream.on("close", () => sockets.delete(upstream));
        downstream.pipe(upstream).pipe(downstream);
        pairs.add([downstream, upstream]);
        downstream.on("close", () => pairs.forEach((p) => p[0] === downstream && pairs.delete(p)));
        downstream.resume();
        downstream.on("error", () => upstream.destroy());
        upstream.on("close", () => downstream.destroy());
        downstream.on("close", () => upstream.destroy());
      });
      upstream.on("error", () => {
        if (connected) downstream.destroy();
        else if (tries > 1) tryUpstream(tries - 1);
        else downstream.destroy();
      });
    };
    tryUpstream(upstreams.length);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${server.address().port}`,
    setUpstreams: (list) => {
      upstreams = list.map((url) => Number(new URL(url).port));
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    /** Stops forwarding on every open connection without closing it, as a dead network path does. */
    freeze: () => {
      for (const [downstream, upstream] of pairs) {
        downstream.unpipe(upstream);
        upstream.unpipe(downstream);
        downstream.pause();
        upstream.pause();
      }
      pairs.clear();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(resolve);
      }),
  });
}

/** Runs node with `args` until it exits by itself: {status, out, err}; status is a message after `ms`. */
export async function runNode(args, { cwd, ms = 60000, onOutput = () => {} } = {}) {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  const result = { out: "", err: "" };
  child.stdout.on("data", (chunk) => {
    result.out += chunk;
    onOutput(result.out);
  });
  child.stderr.on("data", (chunk) => (result.err += chunk));
  result.status = await new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(`still running after ${ms} ms`);
    }, ms);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  return result;
}

/** A minimal EventSource over fetch (Node 20 has none), enough for a display's event stream: named
 * events, `readyState`, `close()`, `onerror` once the stream ends or fails. */
export class FetchEventSource {
  constructor(url) {
    this.readyState = 0;
    this.onerror = null;
    this._listeners = new Map();
    this._abort = new AbortController();
    this._run(url).catch(() => {
      if (this.readyState === 2) return;
      this.readyState = 2;
      this.onerror?.(new Event("error"));
    });
  }

  addEventListener(type, handler) {
    if (!this._listeners.has(type)) this._listeners.set(type, []);
    this._listeners.get(type).push(handler);
  }

  close() {
    this.readyState = 2;
    this._abort.abort();
  }

  async _run(url) {
    const response = await fetch(url, { signal: this._abort.signal, headers: { Accept: "text/event-stream" } });
    if (!response.ok) throw new Error(`status ${response.status}`);
    this.readyState = 1;
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) for (const handler of this._listeners.get(type) ?? []) handler({ data: data.join("\n") });
      }
    }
    throw new Error("the stream ended");
  }
}
