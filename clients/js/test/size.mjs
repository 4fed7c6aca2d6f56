// `npm run size`: each client's entry bundled and minified by esbuild for the browser, then gzip -9:
// hearth-client against the target (8 kB) and socket.io-client, measured the same way in the same run.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

async function size(entry) {
  const result = await build({
    stdin: { contents: `export * from ${JSON.stringify(entry)};`, resolveDir: fileURLToPath(new URL("..", import.meta.url)) },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "silent",
  });
  const minified = result.outputFiles[0].contents;
  return { minified: minified.length, gzip9: gzipSync(minified, { level: 9 }).length };
}

const hearth = await size("./hearth-client.js");
const socketIo = await size("socket.io-client");
console.log(
  JSON.stringify({
    hearth_client: { ...hearth, gzip9_kB: +(hearth.gzip9 / 1000).toFixed(2), target_kB: 8 },
    socket_io_client: { ...socketIo, gzip9_kB: +(socketIo.gzip9 / 1000).toFixed(2) },
    ratio: +(hearth.gzip9 / socketIo.gzip9).toFixed(2),
  }),
);
