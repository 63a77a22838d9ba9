//! `POST /api/emit`: a backend emits any event to a room, a user, or everyone.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use socketioxide::adapter::Adapter;

use super::{
    HttpState,
    extract::{ApiKey, ValidatedJson},
};
use crate::{dto::EmitArgs, error::Result, service};

/// `{ ok: true }`.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Always `true`.
    pub ok: bool,
}

/// 202 once the event is handed to the adapter.
pub async fn emit<A: Adapter>(
    State(st): State<HttpState<A>>,
    _key: ApiKey,
    ValidatedJson(args): ValidatedJson<EmitArgs>,
) -> Result<(StatusCode, Json<Accepted>)> {
    service::emit(&st.io, args).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { ok: true })))
}
