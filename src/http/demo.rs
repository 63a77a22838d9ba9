//! The browser demo, served at `/demo` when `DEMO_DIR` names its built folder: the static
//! page, and `POST /demo/token`, which signs a one-hour token for any user name with the HMAC
//! secret so the page can "log in". Development only: never set `DEMO_DIR` in production.

use axum::{Json, Router, extract::State, response::Redirect, routing::get, routing::post};
use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;
use tower_http::services::ServeDir;
use validator::Validate;

use super::{HttpState, extract::ValidatedJson};
use crate::{
    auth::Signer,
    error::{AppError, Result},
};

/// How long a demo token lives.
const DEMO_TOKEN_SECS: u64 = 3600;

/// The `/demo` routes for the folder `dir`.
pub fn router<A: Adapter>(dir: &str) -> Router<HttpState<A>> {
    tracing::warn!(
        dir,
        "DEMO_DIR is set: POST /demo/token signs a token for ANY user name. Development only: never set DEMO_DIR in production"
    );
    Router::new()
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/token", post(token::<A>))
        .nest_service("/demo/", ServeDir::new(dir).append_index_html_on_directories(true))
}

/// `{ userId }`.
#[derive(Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    #[validate(required(message = "is required"), custom(function = "crate::dto::valid_user_id"))]
    user_id: Option<String>,
}

/// `{ token }`.
#[derive(Serialize)]
pub struct TokenResponse {
    token: String,
}

async fn token<A: Adapter>(
    State(st): State<HttpState<A>>,
    ValidatedJson(req): ValidatedJson<TokenRequest>,
) -> Result<Json<TokenResponse>> {
    let secret = st.app.demo_secret.as_deref().ok_or(AppError::Forbidden)?;
    let user_id = req.user_id.unwrap_or_default();
    let token = Signer::hmac(secret)
        .for_config(&st.app.cfg)
        .sign(&user_id, DEMO_TOKEN_SECS, None)
        .map_err(|e| AppError::field("userId", e))?;
    Ok(Json(TokenResponse { token }))
}
