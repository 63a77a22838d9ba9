//! Every event without a handler of its own: sent to the backend through the event proxy
//! when `PROXY_EVENTS` takes it (contract section 10.2), else `unknown_event`.

use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State},
};

use super::{
    begin,
    reply::{Args, Reply},
};
use crate::{
    error::{AppError, Result},
    node::AppState,
};

/// The fallback handler: the rate limit first, as for every event, then the proxy.
pub async fn fallback<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let proxied = st
        .proxy
        .as_ref()
        .and_then(|p| p.label(reply.event()).map(|label| (p, label)));
    let reply = if proxied.is_some() {
        reply.labelled("proxied")
    } else {
        reply
    };
    let result = forward(&s, arg, reply.event(), proxied).await;
    reply.send(&s, result);
}

async fn forward<A: Adapter>(
    s: &SocketRef<A>,
    arg: Option<serde_json::Value>,
    event: &str,
    proxied: Option<(&crate::proxy::EventProxy, String)>,
) -> Result<serde_json::Value> {
    let ses = begin(s).await?;
    let (proxy, label) = proxied.ok_or(AppError::UnknownEvent)?;
    proxy.forward(event, label, &ses.user_id, &s.id.to_string(), arg).await
}
