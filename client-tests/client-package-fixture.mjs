// Helpers for the tests of the client package (clients/js, `sio-gateway-client`): they install
// the tarball that `npm pack` made (scripts/test.sh packs it into clients/js/pack/), never the
// source folder, into a temp project of its own, the way an application would, and import it
// from there. The browser demo (examples/browser/src) is bundled there too, against that install.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const packDir = path.join(root, "clients", "js", "pack");

/** The packed tarball: SIO_CLIENT_TARBALL, else the one in clients/js/pack/. */
export function tarball() {
  if (process.env.SIO_CLIENT_TARBALL) return path.resolve(process.env.SIO_CLIENT_TARBALL);
  const found = fs.existsSync(packDir) ? fs.readdirSync(packDir).filter((f) => /^sio-gateway-client-.*\.tgz$/.test(f)) : [];
  assert.equal(
    found.length,
    1,
    `expected one sio-gateway-client-*.tgz in ${packDir}, found ${found.length}: ` +
      "cd clients/js && npm ci && rm -rf pack && mkdir pack && npm pack --pack-destination pack (scripts/test.sh does)",
  );
  return path.join(packDir, found[0]);
}

/** Versions the temp project asks for: those locked by clients/js and examples/browser (already in npm's cache). */
function lockedVersion(lockFile, name) {
  const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
  const v = lock.packages?.[`node_modules/${name}`]?.version;
  assert.ok(v, `${name} is not in ${lockFile}`);
  return v;
}

let installed;

/**
 * Installs the tarball (with socket.io-client, its peer, and TypeScript for the type check)
 * into a temp project keyed by the tarball's hash, once; resolves with
 * `{ dir, pkg, node, io }`: the project folder, the package's main and `/node` entries and
 * socket.io-client, all imported from that project.
 */
export async function installPackage() {
  if (installed) return installed;
  const tgz = tarball();
  const hash = createHash("sha256").update(fs.readFileSync(tgz)).digest("hex").slice(0, 12);
  const dir = path.join(os.tmpdir(), `sio-gateway-client-${hash}`);
  const marker = path.join(dir, ".installed");
  if (!fs.existsSync(marker)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const jsLock = path.join(root, "clients", "js", "package-lock.json");
    const pkg = {
      name: "sio-gateway-client-consumer",
      private: true,
      type: "module",
      dependencies: {
        "sio-gateway-client": `file:${tgz}`,
        "socket.io-client": lockedVersion(jsLock, "socket.io-client"),
        typescript: lockedVersion(jsLock, "typescript"),
        "@types/node": lockedVersion(jsLock, "@types/node"),
      },
    };
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(pkg, null, 2));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 180_000,
    });
    fs.writeFileSync(
      path.join(dir, "entry.mjs"),
      'export * as pkg from "sio-gateway-client";\n' +
        'export * as node from "sio-gateway-client/node";\n' +
        'export { io } from "socket.io-client";\n',
    );
    fs.writeFileSync(marker, new Date().toISOString());
  }
  const mod = await import(pathToFileURL(path.join(dir, "entry.mjs")).href);
  installed = { dir, tgz, ...mod };
  return installed;
}

/**
 * Bundles the browser demo (examples/browser/src/app.js) with esbuild against the installed
 * tarball, beside a copy of its page and stylesheet; resolves with the folder for DEMO_DIR.
 */
export async function buildDemo() {
  const { dir } = await installPackage();
  const esbuildPath = path.join(root, "examples", "browser", "node_modules", "esbuild", "lib", "main.js");
  assert.ok(fs.existsSync(esbuildPath), "esbuild is missing: npm ci in examples/browser (scripts/test.sh does)");
  const { build } = await import(pathToFileURL(esbuildPath).href);
  const demo = path.join(dir, "demo");
  const out = path.join(demo, "public");
  fs.rmSync(demo, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  fs.cpSync(path.join(root, "examples", "browser", "src"), path.join(demo, "src"), { recursive: true });
  for (const f of ["index.html", "style.css"]) {
    fs.copyFileSync(path.join(root, "examples", "browser", "public", f), path.join(out, f));
  }
  await build({
    entryPoints: [path.join(demo, "src", "app.js")],
    bundle: true,
    format: "esm",
    target: "es2020",
    outfile: path.join(out, "app.js"),
    logLevel: "error",
  });
  return out;
}

/** POST /api/notifications for `userId`; resolves with the stored notification. */
export async function notify(gw, userId, title, extra = {}) {
  const res = await fetch(`${gw.url}/api/notifications`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ userId, type: "test", title, message: `body of ${title}`, ...extra }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}
