// A typed Node client of sio-gateway: prints notifications exactly once (the cursor is kept in
// a file, so a restart of this process resumes where it stopped), joins a room and chats.
// Type-checked by the client tests (`tsc --noEmit`) against the packed package.
//
//   GATEWAY_URL=http://localhost:3000 TOKEN=$(sio-gateway token --sub alice) node listener.js
import { io, type Socket } from "socket.io-client";
import {
  Gateway,
  GatewayError,
  type ClientToServerEvents,
  type Message,
  type Notification,
  type ServerToClientEvents,
  type WebhookEvent,
} from "sio-gateway-client";
import { fileStore } from "sio-gateway-client/node";

interface Deploy {
  service: string;
  version: string;
}

const url = process.env.GATEWAY_URL ?? "http://localhost:3000";
const gw = new Gateway<{ "deploy.finished": (d: Deploy) => void }>(url, {
  getToken: () => process.env.TOKEN ?? "",
  store: fileStore(".sio-gateway-cursor.json"),
  socket: { transports: ["websocket"] },
});

gw.on("notification", (n: Notification) => console.log(`${n.title}: ${n.message}`));
gw.on("newMessage", (m: Message) => console.log(`${m.userId} in ${m.roomId}: ${m.text}`));
gw.on("deploy.finished", (d) => console.log(`deployed ${d.service} ${d.version}`));
gw.on("authError", (err) => console.error(`signed out: ${err.code}`));

async function main(): Promise<void> {
  const registered = await gw.connect();
  console.log(`${registered.userId}: ${registered.unreadCount} unread`);
  await gw.joinRoom("general");
  const sent: Message = await gw.sendMessage("general", "hello");
  const page = await gw.getMessages("general", { limit: 10, before: sent.id });
  console.log(page.messages.length, page.hasMore);
  const { notifications } = await gw.listNotifications({ unreadOnly: true, limit: 20 });
  const { updated } = await gw.markRead(notifications.map((n) => n.id));
  console.log(`marked ${updated} read`);
  try {
    const order = await gw.call<{ orderId: string }>("order.place", { item: "book", qty: 2 });
    console.log(order.orderId);
  } catch (err) {
    if (err instanceof GatewayError && err.code === "unavailable") console.log("no backend");
    else throw err;
  }

  // The types catch mistakes: each line below must fail to type-check.
  // @ts-expect-error sendMessage takes (roomId, text)
  await gw.sendMessage({ roomId: "general", text: "hi" });
  // @ts-expect-error no such event
  gw.on("notifcation", () => {});
  // @ts-expect-error a notification's id is a string
  gw.on("notification", (n) => n.id.toFixed());
  // @ts-expect-error markRead takes ids or { all: true }
  await gw.markRead({ all: false });
  // @ts-expect-error the extra event's payload is typed
  gw.on("deploy.finished", (d) => d.nope);
}

// Plain socket.io-client with the same event maps.
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth: { token: process.env.TOKEN } });
socket.on("registered", (r) => console.log(r.lastNotificationId));
void socket.emitWithAck("joinRoom", { roomId: "general" }).then((ack) => {
  if (ack.ok) console.log(ack.data.roomId);
  else console.log(ack.error.code);
});
// @ts-expect-error joinRoom needs a roomId
void socket.emitWithAck("joinRoom", { room: "general" });
socket.close();

// A webhook receiver's body, narrowed by its type.
export function onWebhook(e: WebhookEvent): string {
  return e.type === "message.created" ? e.data.text : e.type;
}

main().then(
  () => gw.disconnect(),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
