// A Node application of the client package, run as a child process by
// client-package.test.mjs (copied beside the installed tarball, so its imports resolve there):
// prints each notification it is handed as one JSON line, keeping its cursor in a file.
// On SIGTERM it disconnects and exits, between two events, as a well-behaved service does.
//
// Usage: node client-package-listener.mjs <gateway-url> <token> <cursor-file>
import fs from "node:fs";
import { Gateway } from "sio-gateway-client";
import { fileStore } from "sio-gateway-client/node";

const [url, token, file] = process.argv.slice(2);
const print = (obj) => fs.writeSync(1, JSON.stringify(obj) + "\n"); // synchronous: nothing lost at exit

const gw = new Gateway(url, { getToken: () => token, store: fileStore(file), socket: { transports: ["websocket"] } });
gw.on("notification", (n) => print({ kind: "notification", id: n.id, title: n.title }));
gw.on("registered", (r) => print({ kind: "registered", lastNotificationId: r.lastNotificationId }));
gw.on("error", (e) => print({ kind: "error", code: e.code, message: e.message }));
process.on("SIGTERM", () => {
  gw.disconnect();
  process.exit(0);
});
await gw.connect();
