//! `/healthz` (the process serves), `/readyz` (its dependencies answer) and `/metrics`.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use socketioxide::adapter::Adapter;

use super::HttpState;
use crate::{
    error::AppError,
    http::extract::{bearer, key_matches},
    telemetry,
};

/// 200 while the process serves.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the database (and Redis, if configured) answer, else 503 naming what fails.
pub async fn readyz<A: Adapter>(State(st): State<HttpState<A>>) -> Response {
    let database = st.app.db.ping().await;
    let redis = match &st.app.cluster {
        Some(c) => Some(c.ping().await),
        None => None,
    };
    let state = |ok: bool| if ok { "ok" } else { "failing" };
    let mut checks = serde_json::Map::new();
    checks.insert("database".into(), state(database).into());
    if let Some(r) = redis {
        checks.insert("redis".into(), state(r).into());
    }
    let failing: Vec<&str> = [("database", Some(database)), ("redis", redis)]
        .into_iter()
        .filter_map(|(name, ok)| (ok == Some(false)).then_some(name))
        .collect();
    if failing.is_empty() {
        return (StatusCode::OK, Json(json!({ "status": "ok", "checks": checks }))).into_response();
    }
    let details: serde_json::Map<String, serde_json::Value> = failing
        .iter()
        .map(|name| (name.to_string(), json!(["not answering"])))
        .collect();
    let body = json!({
        "error": { "code": "unavailable", "message": format!("{} unavailable", failing.join(" and ")), "details": details },
        "checks": checks,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Prometheus text; with `METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.
pub async fn metrics<A: Adapter>(State(st): State<HttpState<A>>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Some(expected) = &st.app.cfg.metrics_token {
        let given = bearer(&headers).unwrap_or("");
        if !key_matches(std::slice::from_ref(expected), given) {
            return Err(AppError::Unauthorized);
        }
    }
    let handle =
        telemetry::metrics_handle().ok_or_else(|| AppError::Internal("metrics recorder unavailable".into()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response())
}
