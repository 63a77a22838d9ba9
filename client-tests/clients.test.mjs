// Other clients than socket.io-client 4 (issue 6): python-socketio and the Rust crate
// rust_socketio, each through its runnable example in examples/. scripts/test.sh prepares
// them (a virtual environment with requirements.txt; a cargo build of examples/rust-client).
import assert from "node:assert/strict";
import { runJsonLines } from "./child.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, assertOk, before, describe, it, joined, startGateway, until, waitFor, ack } from "./fixture.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const python = path.join(root, "examples", "python", ".venv", "bin", "python");
const rustClient = path.join(root, "examples", "rust-client", "target", "debug", "sio-gateway-rust-client");

/** Runs a client example from the repository root. */
const runClient = (cmd, args, opts = {}) => runJsonLines(cmd, args, { cwd: root, ...opts });

async function postNotification(gw, userId, title) {
  const res = await fetch(`${gw.url}/api/notifications`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ userId, type: "test", title, message: "from the tests" }),
  });
  assert.equal(res.status, 201);
  return res.json();
}

describe("python-socketio (examples/python/client.py)", () => {
  let gw;
  before(async () => {
    assert.ok(fs.existsSync(python), "examples/python/.venv is missing: scripts/test.sh creates it (python3 -m venv, pip install -r requirements.txt)");
    gw = await startGateway();
  });
  after(() => gw.stop());

  for (const transport of ["--websocket", "--polling-with-upgrade"]) {
    it(`connects with a token, joins, exchanges messages, receives a notification (${transport})`, async () => {
      const room = `py-${transport.slice(2)}`;
      const node = await joined(gw, "node-user", room);
      const fromPython = waitFor(node, "newMessage", 15000);
      const py = runClient(python, [
        path.join(root, "examples", "python", "client.py"),
        gw.url,
        gw.token("py-user"),
        room,
        "hello from python",
        "--wait-notification",
        "--expect-from=node-user",
        ...(transport === "--websocket" ? ["--websocket"] : []),
      ]);
      // The Python client's message reaches the Node member; the Node member answers.
      assert.equal((await fromPython).text, "hello from python");
      assertOk(await ack(node, "sendMessage", { roomId: room, text: "hello from node" }));
      await until(() => py.lines.filter((l) => l.event === "newMessage").length === 2, 10000, "python got the reply");
      const posted = await postNotification(gw, "py-user", "for python");
      assert.equal(await py.exited, 0, py.stderr);
      const byEvent = (e) => py.lines.filter((l) => l.event === e);
      assert.equal(byEvent("registered")[0].data.userId, "py-user");
      assert.deepEqual(byEvent("joinRoom:ack")[0].data, { ok: true, data: { roomId: room } });
      assert.equal(byEvent("sendMessage:ack")[0].data.ok, true);
      assert.equal(byEvent("newMessage")[1].data.text, "hello from node");
      assert.equal(byEvent("notification")[0].data.id, posted.id);
    });
  }
});

describe("rust_socketio (examples/rust-client)", () => {
  let gw;
  before(async () => {
    assert.ok(fs.existsSync(rustClient), "examples/rust-client is not built: scripts/test.sh runs cargo build there");
    gw = await startGateway();
  });
  after(() => gw.stop());

  it("connects with a token, joins, sends, receives its message and a notification", async () => {
    const node = await joined(gw, "node-user", "rust-room");
    const fromRust = waitFor(node, "newMessage", 15000);
    let posted;
    const rs = runClient(rustClient, [gw.url, gw.token("rust-user"), "rust-room", "hello from rust", "--wait-notification"], {
      onLine: (line) => {
        if (line.event === "newMessage") posted = postNotification(gw, "rust-user", "for rust");
      },
    });
    assert.equal((await fromRust).text, "hello from rust");
    assert.equal(await rs.exited, 0, rs.stderr);
    const byEvent = (e) => rs.lines.filter((l) => l.event === e);
    assert.equal(byEvent("registered")[0].data.userId, "rust-user");
    assert.deepEqual(byEvent("joinRoom:ack")[0].data, { ok: true, data: { roomId: "rust-room" } });
    assert.equal(byEvent("newMessage")[0].data.text, "hello from rust");
    assert.equal(byEvent("notification")[0].data.id, (await posted).id);
  });
});
