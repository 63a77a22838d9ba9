// A backend worker for sio-gateway: posts one notification per line of input (or one from
// the arguments) with a service key, retrying while the gateway answers 503 or is restarting.
//
// Usage: node worker.mjs <gateway-url> <api-key> <userId> <title> <message> [json data]
//        node worker.mjs <gateway-url> <api-key> --stdin   (lines: {"userId","type","title","message","data"})
// Env:   GATEWAY_URL, API_KEY can replace the first two arguments.
import { createInterface } from "node:readline";

const args = process.argv.slice(2);
const url = args.shift() ?? process.env.GATEWAY_URL;
const key = args.shift() ?? process.env.API_KEY;
if (!url || !key || args.length === 0) {
  console.error("usage: node worker.mjs <gateway-url> <api-key> <userId> <title> <message> [json data] | --stdin");
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Posts one notification; retries 503 and connection errors up to 10 times with backoff. */
async function post(notification) {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const res = await fetch(new URL("/api/notifications", url), {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(notification),
      });
      const body = await res.json();
      if (res.status === 201) return body;
      if (res.status !== 503) throw new Error(`${res.status} ${JSON.stringify(body.error)}`);
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // TypeError: the connection failed; retry
    }
    await sleep(Math.min(2000, 100 * 2 ** attempt));
  }
  throw new Error("gateway unavailable after 10 attempts");
}

if (args[0] === "--stdin") {
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const n = JSON.parse(line);
    console.log(JSON.stringify(await post({ type: "message", ...n })));
  }
} else {
  const [userId, title, message, data] = args;
  const n = await post({ userId, type: "message", title, message, data: data ? JSON.parse(data) : null });
  console.log(JSON.stringify(n));
}
