// A Node listener for sio-gateway: connects with a user's token, prints every notification
// as one JSON line, keeps its cursor (auth.lastNotificationId) current so automatic
// reconnects resume where they left off, and catches up on what it missed.
//
// Usage: node listener.mjs <gateway-url> <token> [--since <notification id>] [--exit-after <n>]
// Env:   GATEWAY_URL, TOKEN can replace the first two arguments.
import { io } from "socket.io-client";

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const since = flag("--since");
const exitAfter = Number(flag("--exit-after") ?? 0);
const [url = process.env.GATEWAY_URL, token = process.env.TOKEN] = args;
if (!url || !token) {
  console.error("usage: node listener.mjs <gateway-url> <token> [--since <id>] [--exit-after <n>]");
  process.exit(2);
}

const socket = io(url, {
  auth: { token, lastNotificationId: since ?? null },
  reconnectionDelay: 200,
  reconnectionDelayMax: 2000,
});
let received = 0;
const print = (kind, body) => console.log(JSON.stringify({ kind, ...body }));

socket.on("registered", (r) => {
  // The newest id at connect time: without a cursor of our own, this becomes it.
  if (r.lastNotificationId && !socket.auth.lastNotificationId) {
    socket.auth.lastNotificationId = r.lastNotificationId;
  }
  print("registered", { userId: r.userId, unreadCount: r.unreadCount });
});
socket.on("notification", (n) => {
  socket.auth.lastNotificationId = n.id;
  print("notification", { id: n.id, title: n.title, message: n.message, data: n.data });
  if (exitAfter && ++received >= exitAfter) {
    socket.close();
    process.exit(0);
  }
});
socket.on("disconnect", (reason) => print("disconnect", { reason }));
socket.on("connect_error", (err) => {
  print("connect_error", { message: err.message });
  // Token problems do not fix themselves: stop instead of retrying forever.
  if (["missing_token", "invalid_token", "token_expired"].includes(err.message)) process.exit(1);
});
