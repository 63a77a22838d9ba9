//! The admin UI's commands: `emit`, `join`, `leave` and `_disconnect`, each on a namespace
//! and an optional filter. A filter is a socket id or a room, as in Socket.IO (where every
//! socket is in a room named after its id); here a socket id is looked up among the sockets
//! of all nodes, and anything else is taken as a room.

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, TryData},
    socket::RemoteSocket,
};

use super::{ADMIN_NS, now_iso};

/// All the arguments of an event, however many there are.
pub struct AllArgs(pub Vec<serde_json::Value>);

impl<'de> Deserialize<'de> for AllArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AllArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<AllArgs, S::Error> {
                let mut args = Vec::new();
                while let Some(v) = seq.next_element()? {
                    args.push(v);
                }
                Ok(AllArgs(args))
            }
        }
        // Asking for a tuple makes socketioxide hand over every argument, not only the first.
        d.deserialize_tuple(64, V)
    }
}

/// Registers the command handlers on an admin socket.
pub fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on("emit", emit::<A>);
    s.on("join", join::<A>);
    s.on("leave", leave::<A>);
    s.on("_disconnect", disconnect::<A>);
}

fn text(args: &[serde_json::Value], i: usize) -> Option<String> {
    args.get(i)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The sockets a command applies to: those of `nsp` matching `filter` (a socket id or a room),
/// or all of them.
async fn targets<A: Adapter>(io: &SocketIo<A>, nsp: &str, filter: Option<&str>) -> Vec<RemoteSocket<A>> {
    let Some(ns) = io.of(nsp) else { return Vec::new() };
    let all = match ns.clone().fetch_sockets().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(cause = %e, "admin command: could not list sockets");
            return Vec::new();
        }
    };
    match filter {
        None => all,
        Some(f) => {
            let by_id: Vec<RemoteSocket<A>> = all.into_iter().filter(|s| s.data().id.to_string() == f).collect();
            if !by_id.is_empty() {
                return by_id;
            }
            ns.within(f.to_string()).fetch_sockets().await.unwrap_or_default()
        }
    }
}

/// `emit(nsp, filter, event, ...args)`.
async fn emit<A: Adapter>(TryData(args): TryData<AllArgs>, io: SocketIo<A>) {
    let Ok(AllArgs(args)) = args else { return };
    let (Some(nsp), filter, Some(event)) = (text(&args, 0), text(&args, 1), text(&args, 2)) else {
        return;
    };
    let payload = args.get(3).cloned().unwrap_or(serde_json::Value::Null);
    for s in targets(&io, &nsp, filter.as_deref()).await {
        let _ = s.emit(&event, &payload).await;
    }
}

/// `join(nsp, room, filter?)`.
async fn join<A: Adapter>(TryData(args): TryData<AllArgs>, io: SocketIo<A>) {
    if let Ok(AllArgs(args)) = args {
        move_sockets(&args, &io, true).await;
    }
}

/// `leave(nsp, room, filter?)`.
async fn leave<A: Adapter>(TryData(args): TryData<AllArgs>, io: SocketIo<A>) {
    if let Ok(AllArgs(args)) = args {
        move_sockets(&args, &io, false).await;
    }
}

/// Makes the targeted sockets join (or leave) the room, and tells the admin UI.
async fn move_sockets<A: Adapter>(args: &[serde_json::Value], io: &SocketIo<A>, join: bool) {
    let (Some(nsp), Some(room)) = (text(args, 0), text(args, 1)) else {
        return;
    };
    for s in targets(io, &nsp, text(args, 2).as_deref()).await {
        let id = s.data().id.to_string();
        let done = if join {
            s.join(room.clone()).await
        } else {
            s.leave(room.clone()).await
        };
        if done.is_ok()
            && let Some(admin) = io.of(ADMIN_NS)
        {
            let event = if join { "room_joined" } else { "room_left" };
            let _ = admin.emit(event, &(nsp.as_str(), room.as_str(), id, now_iso())).await;
        }
    }
}

/// `_disconnect(nsp, close, filter?)`.
async fn disconnect<A: Adapter>(TryData(args): TryData<AllArgs>, io: SocketIo<A>) {
    let Ok(AllArgs(args)) = args else { return };
    let Some(nsp) = text(&args, 0) else { return };
    for s in targets(&io, &nsp, text(&args, 2).as_deref()).await {
        let id = s.data().id;
        if let Err(e) = s.disconnect().await {
            tracing::debug!(cause = %e, %id, "admin disconnect failed");
        }
    }
}
