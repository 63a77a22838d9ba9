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
    node::AppState,
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
    // A `token` that is missing, not a string or empty breaks the DTO like any other field:
    // `validation_failed` naming `token` (contract v1.2, section 4).
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
