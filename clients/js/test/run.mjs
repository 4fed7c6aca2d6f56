// `npm test`: starts the server side (python -m tests.jsharness: one throwaway PostgreSQL cluster, and
// `hearth serve` instances on demand), runs every test/*.test.mjs with `node --test`, then stops it all.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const python = process.env.HEARTH_PYTHON ?? join(root, ".venv/bin/python");

const launcher = spawn(python, ["-m", "tests.jsharness"], { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
const first = await new Promise((ok, fail) => {
  createInterface({ input: launcher.stdout }).once("line", ok);
  launcher.once("exit", (code) => fail(new Error(`tests.jsharness exited with ${code}`)));
});
const { control } = JSON.parse(first);
launcher.stdout.resume();

const only = process.argv.slice(2);
const files = (only.length ? only : readdirSync(here).filter((name) => name.endsWith(".test.mjs")).sort())
  .map((name) => join(here, name.replace(/^test\//, "")));
const tests = spawn(process.execPath, ["--test", ...files], {
  stdio: "inherit",
  env: { ...process.env, HEARTH_HARNESS: control },
});
const code = await new Promise((ok) => tests.once("exit", (status, sig) => ok(status ?? (sig ? 1 : 0))));
launcher.stdin.end();
await new Promise((ok) => launcher.once("exit", ok));
process.exit(code);
