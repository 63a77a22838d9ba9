// The sio-gateway browser demo: log in as a user name, join rooms, chat, and watch
// notifications arrive with an unread badge. Bundled with esbuild (npm run build).
import { io } from "socket.io-client";

const $ = (id) => document.getElementById(id);
const state = { socket: null, user: null, rooms: [], current: null, messages: new Map(), unread: 0, notifications: [] };

function setStatus(text) {
  $("status").textContent = text;
}

function setUnread(n) {
  state.unread = Math.max(0, n);
  $("badge").textContent = String(state.unread);
  $("badge").classList.toggle("zero", state.unread === 0);
}

function renderRooms() {
  $("rooms").replaceChildren(
    ...state.rooms.map((room) => {
      const b = document.createElement("button");
      b.textContent = room;
      b.className = room === state.current ? "current" : "";
      b.onclick = () => selectRoom(room);
      return b;
    }),
  );
}

function renderMessages() {
  const list = state.messages.get(state.current) ?? [];
  $("messages").replaceChildren(
    ...list.map((m) => {
      const li = document.createElement("li");
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = m.userId;
      li.append(who, document.createTextNode(m.text));
      li.dataset.id = m.id;
      return li;
    }),
  );
}

function renderNotifications() {
  $("notifications").replaceChildren(
    ...state.notifications.map((n) => {
      const li = document.createElement("li");
      li.textContent = `${n.title}: ${n.message}`;
      li.className = n.read ? "" : "unread";
      li.dataset.id = n.id;
      return li;
    }),
  );
}

async function selectRoom(room) {
  state.current = room;
  renderRooms();
  const res = await state.socket.emitWithAck("getMessages", { roomId: room, limit: 50 });
  if (res.ok) state.messages.set(room, res.data.messages.reverse());
  renderMessages();
}

async function login(user) {
  const res = await fetch("/demo/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: user }),
  });
  if (!res.ok) throw new Error((await res.json()).error?.message ?? res.statusText);
  const { token } = await res.json();
  state.user = user;
  const socket = io(location.origin, { auth: { token, lastNotificationId: null } });
  state.socket = socket;
  socket.on("connect", () => setStatus(`signed in as ${user}`));
  socket.on("disconnect", (reason) => setStatus(`disconnected (${reason})`));
  socket.on("connect_error", (err) => setStatus(`cannot connect: ${err.message}`));
  socket.on("registered", async (r) => {
    socket.auth.lastNotificationId ??= r.lastNotificationId;
    setUnread(r.unreadCount);
    const page = await socket.emitWithAck("listNotifications", { limit: 20 });
    if (page.ok) state.notifications = page.data.notifications;
    renderNotifications();
  });
  socket.on("notification", (n) => {
    socket.auth.lastNotificationId = n.id;
    if (state.notifications.some((x) => x.id === n.id)) return;
    state.notifications.unshift(n);
    setUnread(state.unread + (n.read ? 0 : 1));
    renderNotifications();
  });
  socket.on("notificationsRead", (e) => {
    for (const n of state.notifications) if (e.all || e.ids?.includes(n.id)) n.read = true;
    setUnread(state.notifications.filter((n) => !n.read).length);
    renderNotifications();
  });
  socket.on("newMessage", (m) => {
    const list = state.messages.get(m.roomId) ?? [];
    list.push(m);
    state.messages.set(m.roomId, list);
    if (m.roomId === state.current) renderMessages();
  });
  $("login").hidden = true;
  $("app").hidden = false;
}

$("login").onsubmit = async (e) => {
  e.preventDefault();
  try {
    await login($("user").value.trim());
  } catch (err) {
    setStatus(`login failed: ${err.message}`);
  }
};

$("join").onsubmit = async (e) => {
  e.preventDefault();
  const room = $("room").value.trim();
  const res = await state.socket.emitWithAck("joinRoom", { roomId: room });
  if (!res.ok) return setStatus(`join failed: ${res.error.code}`);
  if (!state.rooms.includes(room)) state.rooms.push(room);
  $("room").value = "";
  await selectRoom(room);
};

$("send").onsubmit = async (e) => {
  e.preventDefault();
  if (!state.current) return setStatus("join a room first");
  const res = await state.socket.emitWithAck("sendMessage", { roomId: state.current, text: $("text").value });
  if (!res.ok) return setStatus(`send failed: ${res.error.code}`);
  $("text").value = "";
};

$("markAll").onclick = async () => {
  await state.socket.emitWithAck("markRead", { all: true });
};
