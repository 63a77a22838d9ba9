//! `refreshToken`: extends a socket's life with a new token for the same user.

use serde::Serialize;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, State},
};

use super::{
    begin,
    reply::{Args, Reply},
};
use crate::{
    auth::AuthError,
    dto::{RefreshTokenArgs, parse},
    error::{AppError, Result},
    state::AppState,
};

/// `refreshToken`'s answer.
#[derive(Debug, Serialize)]
pub struct Refreshed {
    /// The socket's new expiry, seconds since the epoch.
    pub exp: u64,
}

/// `refreshToken { token }`: same `sub` required; the socket then expires with the new token,
/// and the new `rooms` claim governs later joins.
pub async fn refresh<A: Adapter>(s: SocketRef<A>, Args(arg): Args, reply: Reply<A>, State(st): State<AppState>) {
    let result = refresh_token(&s, arg, &st).await;
    reply.send(&s, result);
}

async fn refresh_token<A: Adapter>(
    s: &SocketRef<A>,
    arg: Option<serde_json::Value>,
    st: &AppState,
) -> Result<Refreshed> {
    let ses = begin(s).await?;
    // A token that is there but is no token (empty, a number) is a bad token, not bad input.
    if let Some(t) = arg.as_ref().and_then(|a| a.get("token"))
        && t.as_str().is_none_or(|t| t.is_empty())
    {
        return Err(AppError::InvalidToken);
    }
    let args: RefreshTokenArgs = parse(arg)?;
    let token = args.token.unwrap_or_default();
    let claims = st.verifier.verify(&token).map_err(|e| match e {
        AuthError::Expired => AppError::TokenExpired,
        AuthError::Invalid | AuthError::Missing => AppError::InvalidToken,
    })?;
    if claims.sub != ses.user_id {
        return Err(AppError::InvalidToken);
    }
    let old_deadline = st.expiry_deadline(ses.expires_at());
    ses.refresh(&claims);
    st.expiry.remove(old_deadline, s.id);
    st.expiry.add(st.expiry_deadline(claims.exp), s.id);
    Ok(Refreshed { exp: claims.exp })
}
