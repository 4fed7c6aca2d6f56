// The package as an app gets it: `npm pack`, installed from the tarball into an empty project, imported,
// and a usage of the whole API type-checked against the installed declarations.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const here = fileURLToPath(new URL(".", import.meta.url));
const packageDir = join(here, "..");

test("npm pack, install the tarball into an empty project, import it, tsc --noEmit a usage of the API", () => {
  const work = mkdtempSync(join(tmpdir(), "hearth-client-pack-"));
  try {
    const [packed] = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: packageDir, encoding: "utf8" }),
    );
    assert.deepEqual(packed.files.map((f) => f.path).sort(), [
      "README.md",
      "hearth-client.js",
      "index.d.ts",
      "package.json",
    ]);
    const app = join(work, "app");
    execFileSync("mkdir", [app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", join(work, packed.filename)], {
      cwd: app,
      stdio: "ignore",
    });
    const exported = execFileSync(
      process.execPath,
      ["--input-type=module", "-e", "const m = await import('hearth-client'); console.log(Object.keys(m).sort().join())"],
      { cwd: app, encoding: "utf8" },
    ).trim();
    assert.equal(exported, "Hearth,HearthError,Session,backoffDelay");
    copyFileSync(join(here, "usage.ts"), join(app, "usage.ts"));
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          lib: ["es2022", "dom"],
          types: [],
        },
        files: ["usage.ts"],
      }),
    );
    const tsc = join(packageDir, "node_modules", "typescript", "bin", "tsc");
    execFileSync(process.execPath, [tsc, "-p", app], { cwd: app, encoding: "utf8" });
    assert.ok(readdirSync(join(app, "node_modules", "hearth-client")).includes("index.d.ts"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
