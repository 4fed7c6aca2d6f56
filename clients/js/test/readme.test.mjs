// Every ```js example of README.md runs against a live server, each in its own node process that must end
// by itself. The restart example's instance is SIGKILLed when it says so; it must still see every message
// once, in order.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { roundRobinProxy, runNode, startServers } from "./helpers.mjs";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const examples = [...readFileSync(join(packageDir, "README.md"), "utf8").matchAll(/```js\n([\s\S]*?)```/g)].map(
  (m) => m[1],
);
const RESTART = "restart the server now";

let servers;
let proxy;
let work;
before(async () => {
  servers = await startServers();
  proxy = await roundRobinProxy([servers.url]);
  // Inside the package, so `import ... from "hearth-client"` resolves to it (a package may import itself).
  work = mkdtempSync(join(packageDir, ".readme-"));
  writeFileSync(join(work, "setup.mjs"), 'import { WebSocket } from "ws";\nglobalThis.WebSocket ??= WebSocket;\n');
});
after(async () => {
  await proxy.close();
  await servers.stop();
  rmSync(work, { recursive: true, force: true });
});

test("the README has examples, one of them surviving a restart", () => {
  assert.ok(examples.length >= 4, `${examples.length} examples`);
  assert.ok(examples.some((code) => code.includes(RESTART)));
});

examples.forEach((code, index) => {
  const title = code.includes(RESTART) ? "restart" : code.split("\n").find((l) => l.includes("new Hearth"));
  test(`README example ${index + 1} (${title.trim()}) runs and ends by itself`, async () => {
    const file = join(work, `example-${index + 1}.mjs`);
    writeFileSync(file, code.replaceAll("http://127.0.0.1:8000", proxy.url));
    let restarted = null;
    const { status, out, err } = await runNode(["--import", join(work, "setup.mjs"), file], {
      cwd: packageDir,
      onOutput: (out) => {
        if (!out.includes(RESTART) || restarted) return;
        restarted = (async () => {
          // The way a deploy goes: a new instance comes up behind the balancer, the old one dies.
          const next = await servers.startInstance();
          const old = servers.instances.filter((i) => i.url !== next.url);
          proxy.setUpstreams([...old.map((i) => i.url), next.url]);
          for (const instance of old) await servers.kill(instance.index, "KILL").catch(() => {});
          proxy.setUpstreams([next.url]);
        })();
      },
    });
    await restarted;
    assert.equal(status, 0, `${out}\n${err}`);
    if (code.includes(RESTART)) {
      assert.ok(restarted, "the example never asked for the restart");
      assert.match(out, /^1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20$/m);
    }
  });
});
