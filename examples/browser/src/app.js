// The sio-gateway browser demo, on the client package (sio-gateway-client): log in as a user
// name, join rooms, chat, and watch notifications arrive with an unread badge. The package
// keeps the notification cursor in localStorage, so a reload resumes where the page stopped
// (each notification is shown once), fetches a token for every connect and refreshes it before
// it expires. Bundled with esbuild (npm run build).
import { Gateway, GatewayError, localStorageStore } from "sio-gateway-client";

const $ = (id) => document.getElementById(id);
// The demo logs what the package hands it with console.debug; the browser tests read these lines.
console.debug("demo loaded");
const USER_KEY = "sio-gateway-demo:user";
const state = { gw: null, user: null, rooms: [], current: null, messages: new Map(), unread: 0, notifications: new Map() };

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
  const newestFirst = [...state.notifications.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, 50);
  $("notifications").replaceChildren(
    ...newestFirst.map((n) => {
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
  try {
    const page = await state.gw.getMessages(room, { limit: 50 });
    state.messages.set(room, page.messages.reverse());
  } catch (err) {
    setStatus(`history failed: ${err.code ?? err.message}`);
  }
  renderMessages();
}

/** A one-hour token for `user` from the gateway's demo endpoint (DEMO_DIR only). */
async function fetchToken(user) {
  const res = await fetch("/demo/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: user }),
  });
  if (!res.ok) throw new Error((await res.json()).error?.message ?? res.statusText);
  return (await res.json()).token;
}

async function login(user) {
  state.user = user;
  const gw = new Gateway(location.origin, {
    getToken: () => fetchToken(user),
    store: localStorageStore(),
  });
  state.gw = gw;
  gw.on("connect", () => setStatus(`signed in as ${user}`));
  gw.on("disconnect", (reason) => {
    setStatus(`disconnected (${reason})`);
    console.debug("disconnect", reason);
  });
  gw.on("connect_error", (err) => setStatus(`cannot connect: ${err.message}`));
  gw.on("authError", (err) => setStatus(`signed out: ${err.code}`));
  gw.on("error", (err) => console.warn("gateway error", err.code, err.message));
  gw.on("registered", async (r) => {
    console.debug("registered", r.unreadCount);
    setUnread(r.unreadCount);
    // The newest page is history; notifications that arrive from now on are added one by one.
    try {
      const page = await gw.listNotifications({ limit: 20 });
      for (const n of page.notifications) state.notifications.set(n.id, n);
    } catch (err) {
      setStatus(`notifications failed: ${err.code ?? err.message}`);
    }
    renderNotifications();
  });
  gw.on("notification", (n) => {
    // Handed over once per notification, also across reloads.
    console.debug("notification", n.id);
    const known = state.notifications.has(n.id);
    state.notifications.set(n.id, n);
    if (!known && !n.read) setUnread(state.unread + 1);
    renderNotifications();
  });
  gw.on("notificationsRead", (e) => {
    if (e.all) {
      for (const n of state.notifications.values()) n.read = true;
      setUnread(0);
    } else {
      // Ids the page never loaded were unread as far as it knows.
      const before = e.ids.filter((id) => !state.notifications.get(id)?.read).length;
      for (const id of e.ids) if (state.notifications.has(id)) state.notifications.get(id).read = true;
      setUnread(state.unread - before);
    }
    renderNotifications();
  });
  gw.on("newMessage", (m) => {
    const list = state.messages.get(m.roomId) ?? [];
    list.push(m);
    state.messages.set(m.roomId, list);
    if (m.roomId === state.current) renderMessages();
  });
  gw.on("tokenRefreshed", (exp) => console.debug("token refreshed until", new Date(exp * 1000).toISOString()));
  localStorage.setItem(USER_KEY, user);
  $("login").hidden = true;
  $("app").hidden = false;
  await gw.connect();
}

$("login").onsubmit = async (e) => {
  e.preventDefault();
  try {
    await login($("user").value.trim());
  } catch (err) {
    setStatus(`login failed: ${err.code ?? err.message}`);
  }
};

$("join").onsubmit = async (e) => {
  e.preventDefault();
  const room = $("room").value.trim();
  try {
    await state.gw.joinRoom(room);
  } catch (err) {
    return setStatus(`join failed: ${err instanceof GatewayError ? err.code : err.message}`);
  }
  if (!state.rooms.includes(room)) state.rooms.push(room);
  $("room").value = "";
  await selectRoom(room);
};

$("send").onsubmit = async (e) => {
  e.preventDefault();
  if (!state.current) return setStatus("join a room first");
  try {
    await state.gw.sendMessage(state.current, $("text").value);
    $("text").value = "";
  } catch (err) {
    setStatus(`send failed: ${err instanceof GatewayError ? err.code : err.message}`);
  }
};

$("markAll").onclick = async () => {
  try {
    await state.gw.markRead({ all: true });
  } catch (err) {
    setStatus(`mark read failed: ${err.code ?? err.message}`);
  }
};

// A reload signs the same user in again; the cursor in localStorage resumes the notifications.
const remembered = localStorage.getItem(USER_KEY);
if (remembered) {
  $("user").value = remembered;
  login(remembered).catch((err) => setStatus(`login failed: ${err.code ?? err.message}`));
}
