// Raw Engine.IO v4 / Socket.IO v5 clients, below socket.io-client, for the bad-input battery:
// they send whatever bytes they are told to, record every frame the server sends back, and
// notice when the server closes the connection. Nothing here throws on a server's odd answer;
// waits are bounded and resolve with what happened.
import fs from "node:fs";
import WebSocket from "ws";

export const RS = "\x1e"; // Engine.IO v4 record separator between packets of a polling payload

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Parses one Engine.IO text packet. Socket.IO packets (Engine.IO type 4) are split into
// { sio: type digit, ns, id, data (JSON or undefined), raw }.
export function parsePacket(text) {
  const eio = text[0];
  if (eio !== "4") return { eio, raw: text };
  const sio = text[1];
  let i = 2;
  if (sio === "5" || sio === "6") {
    const dash = text.indexOf("-", i);
    if (dash > 0) i = dash + 1;
  }
  let ns = "/";
  if (text[i] === "/") {
    const comma = text.indexOf(",", i);
    ns = comma < 0 ? text.slice(i) : text.slice(i, comma);
    i = comma < 0 ? text.length : comma + 1;
  }
  let idText = "";
  while (i < text.length && text[i] >= "0" && text[i] <= "9") idText += text[i++];
  let data;
  try {
    data = i < text.length ? JSON.parse(text.slice(i)) : undefined;
  } catch {
    data = undefined;
  }
  return { eio, sio, ns, id: idText === "" ? null : Number(idText), data, raw: text };
}

// Common part of both transports: the frames received, the close, bounded waits.
class RawConn {
  constructor() {
    this.frames = []; // { text } | { binary: Buffer }, in arrival order
    this.closed = false;
    this.closeReason = null;
    this.waiters = new Set();
  }

  _frame(frame) {
    this.frames.push(frame);
    if (frame.text !== undefined) frame.packet = parsePacket(frame.text);
    for (const w of this.waiters) w();
  }

  _close(reason) {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    for (const w of this.waiters) w();
  }

  // Resolves with the first frame from index `from` on that satisfies pred, or "closed" when
  // the connection is closed first, or null after ms.
  waitFrame(pred, ms = 5000, from = 0) {
    return new Promise((resolve) => {
      let i = from;
      const check = () => {
        for (; i < this.frames.length; i++) {
          if (pred(this.frames[i])) return done(this.frames[i]);
        }
        if (this.closed) return done("closed");
      };
      const done = (v) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => done(null), ms);
      this.waiters.add(check);
      check();
    });
  }

  // True once closed within ms.
  async waitClosed(ms = 5000) {
    const end = Date.now() + ms;
    while (!this.closed && Date.now() < end) await sleep(20);
    return this.closed;
  }

  // The Socket.IO handshake on "/" with auth { token }: { ok: true, sid } or { ok: false, message }.
  async connectNs(token, ms = 8000) {
    const from = this.frames.length;
    this.send(`40${JSON.stringify({ token })}`);
    const f = await this.waitFrame((f) => f.packet?.sio === "0" || f.packet?.sio === "4", ms, from);
    if (f === null) return { ok: false, message: "no CONNECT answer" };
    if (f === "closed") return { ok: false, message: `closed (${this.closeReason})` };
    if (f.packet.sio === "0") return { ok: true, sid: f.packet.data?.sid };
    return { ok: false, message: f.packet.data?.message ?? f.text };
  }

  // Emits `42<id>[event, arg]` and resolves with the ack's first argument, "closed", or null.
  async ack(id, event, arg, ms = 5000) {
    const from = this.frames.length;
    this.send(`42${id}${JSON.stringify([event, arg])}`);
    const f = await this.waitFrame((f) => f.packet?.sio === "3" && f.packet.id === id, ms, from);
    if (f === null || f === "closed") return f;
    return Array.isArray(f.packet.data) ? f.packet.data[0] : f.packet.data;
  }
}

// A WebSocket-only connection: `ws://…/socket.io/?EIO=4&transport=websocket`.
export class RawWs extends RawConn {
  // Resolves once the Engine.IO open packet arrived; throws if it does not within ms.
  static async open(baseUrl, ms = 8000) {
    const c = new RawWs();
    const url = `${baseUrl.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
    c.ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024, handshakeTimeout: ms });
    c.ws.on("message", (data, isBinary) => {
      if (isBinary) return c._frame({ binary: Buffer.from(data) });
      const text = data.toString();
      if (text === "2") c.sendNow("3"); // answer the server's ping
      if (text === "1") c._close("engine close packet");
      c._frame({ text });
    });
    c.ws.on("close", (code, reason) => c._close(`ws close ${code} ${reason}`.trim()));
    c.ws.on("error", (e) => c._close(`ws error: ${e.message}`));
    const open = await c.waitFrame((f) => f.text?.startsWith("0"), ms);
    if (open === null || open === "closed") {
      c.close();
      throw new Error(`no Engine.IO open packet over WebSocket (${open ?? "timeout"}; ${c.closeReason})`);
    }
    c.sid = JSON.parse(open.text.slice(1)).sid;
    return c;
  }

  sendNow(data, opts) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(data, opts);
  }

  // One frame per item: a string is a text frame, a Buffer a binary frame, { textBytes: Buffer }
  // a text frame holding exactly those bytes (which need not be UTF-8).
  send(...items) {
    for (const item of items) {
      if (Buffer.isBuffer(item)) this.sendNow(item, { binary: true });
      else if (item?.textBytes) this.sendNow(item.textBytes, { binary: false });
      else this.sendNow(item);
    }
  }

  // Waits for the socket's buffered frames to leave (bounded).
  async drain(ms = 10000) {
    const end = Date.now() + ms;
    while (this.ws.bufferedAmount > 0 && !this.closed && Date.now() < end) await sleep(10);
  }

  close() {
    if (!this.ws) return;
    try {
      this.ws.terminate();
    } catch {
      // already gone
    }
    this._close(this.closeReason ?? "closed by the client");
  }
}

// A long-polling connection: GET to open, a background loop of GETs reading packets, POSTs to send.
export class RawPolling extends RawConn {
  static async open(baseUrl, ms = 8000) {
    const c = new RawPolling();
    c.base = `${baseUrl}/socket.io/?EIO=4&transport=polling`;
    c.abort = new AbortController();
    c.posts = []; // { status, body } of every POST, in order
    const res = await fetch(c.base, { signal: AbortSignal.timeout(ms) });
    const body = await res.text();
    if (res.status !== 200 || !body.startsWith("0")) throw new Error(`polling open: ${res.status} ${body}`);
    c.sid = JSON.parse(body.slice(1)).sid;
    c.url = `${c.base}&sid=${encodeURIComponent(c.sid)}`;
    c.loop = c._pollLoop();
    return c;
  }

  async _pollLoop() {
    while (!this.closed) {
      let res, body;
      try {
        // pingInterval (25 s) + pingTimeout (20 s) bounds how long a healthy GET may wait.
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(50000)]);
        res = await fetch(this.url, { signal });
        body = await res.text();
      } catch (e) {
        this._close(`GET failed: ${e.message}`);
        return;
      }
      if (res.status !== 200) {
        this._close(`GET ${res.status} ${body}`.trim());
        return;
      }
      this.gets = (this.gets ?? 0) + 1;
      if (body === "") continue; // the session closed while this GET waited; the next GET tells
      for (const p of body.split(RS)) {
        if (p.startsWith("b")) this._frame({ binary: Buffer.from(p.slice(1), "base64") });
        else {
          if (p === "2") this.post("3").catch(() => {});
          if (p === "1") this._close("engine close packet");
          this._frame({ text: p });
        }
      }
    }
  }

  // POSTs a raw body (string or Buffer); resolves with { status, body } (status 0: no answer
  // within ms, or a network error). Never throws.
  async postRaw(body, { ms = 10000, url = this.url, headers = {} } = {}) {
    try {
      const res = await fetch(url, {
        method: "POST",
        body,
        headers: { "content-type": "text/plain;charset=UTF-8", ...headers },
        signal: AbortSignal.timeout(ms),
      });
      const r = { status: res.status, body: await res.text() };
      this.posts.push(r);
      return r;
    } catch (e) {
      const r = { status: 0, body: e.message };
      this.posts.push(r);
      return r;
    }
  }

  async post(...items) {
    return this.postRaw(items.map(encodeItem).join(RS));
  }

  // Sends the items as Engine.IO packets: as few POST bodies as fit under `budget` bytes each
  // (a single item larger than that goes alone), one after the other.
  async send(...items) {
    return this.sendChunked(items);
  }

  async sendChunked(items, budget = 60000) {
    const results = [];
    let batch = [];
    let size = 0;
    const flush = async () => {
      if (batch.length) results.push(await this.postRaw(batch.join(RS)));
      batch = [];
      size = 0;
    };
    for (const item of items) {
      const enc = encodeItem(item);
      if (batch.length && size + enc.length + 1 > budget) await flush();
      batch.push(enc);
      size += enc.length + 1;
    }
    await flush();
    return results;
  }

  // Waits for nothing: POSTs are awaited in send().
  async drain() {}

  close() {
    if (!this.closed) this.postRaw("1", { ms: 2000 }).catch(() => {});
    this._close(this.closeReason ?? "closed by the client");
    this.abort?.abort();
  }
}

function encodeItem(item) {
  if (Buffer.isBuffer(item)) return `b${item.toString("base64")}`;
  if (item?.textBytes) return item.textBytes.toString("latin1");
  return item;
}

// ---------------------------------------------------------------------------
// The gateway process, found without help from the fixture: the process whose working
// directory is the gateway's temp dir (startGateway spawns the binary with cwd = gw.dir, a
// fresh mkdtemp directory no other process uses) and whose executable is the binary under test.

export function findGatewayPid(gw, bin) {
  const want = fs.realpathSync(gw.dir);
  const exe = bin ? fs.realpathSync(bin) : null;
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/cwd`) !== want) continue;
      if (exe && fs.readlinkSync(`/proc/${entry}/exe`) !== exe) continue;
      return Number(entry);
    } catch {
      // gone, or not ours to read
    }
  }
  throw new Error(`no process runs in ${gw.dir}`);
}

// Resident set size of a process in bytes (VmRSS of /proc/<pid>/status).
export function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}
