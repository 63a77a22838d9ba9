//! `/` (an index of the endpoints), `/healthz` (the process serves), `/readyz` (its
//! dependencies answer) and `/metrics`.

use std::{future::Future, time::Duration};

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

/// Longest each readiness check may take: a database or Redis that hangs counts as failing,
/// so `/readyz` answers within a second whatever its dependencies do.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// Runs one check within [`CHECK_TIMEOUT`]: `None` when it passed, else why not.
async fn check(ping: impl Future<Output = bool>) -> Option<&'static str> {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(true) => None,
        Ok(false) => Some("not answering"),
        Err(_) => Some("no answer within 800 ms"),
    }
}

/// 200 when the database and Redis (if configured) answer, else 503 naming the failing check
/// (contract section 6). With `READYZ_REQUIRE_REDIS=false` a failing Redis alone is *degraded*:
/// 200 with `status: "degraded"` and the check named, since the node still serves its own
/// sockets (and delivers across nodes through the database). Both checks run at once, each
/// bounded by [`CHECK_TIMEOUT`].
pub async fn readyz<A: Adapter>(State(st): State<HttpState<A>>) -> Response {
    let (database, redis) = tokio::join!(check(st.app.db.ping()), async {
        match &st.app.cluster {
            Some(c) => Some(check(c.ping()).await),
            None => None,
        }
    });
    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    for (name, result) in [("database", Some(database)), ("redis", redis)] {
        match result {
            None => {}
            Some(None) => {
                checks.insert(name.into(), "ok".into());
            }
            Some(Some(why)) => {
                checks.insert(name.into(), "failing".into());
                failing.push((name, why));
            }
        }
    }
    if failing.is_empty() {
        return (StatusCode::OK, Json(json!({ "status": "ok", "checks": checks }))).into_response();
    }
    let names: Vec<&str> = failing.iter().map(|(name, _)| *name).collect();
    let fatal = database.is_some() || st.app.cfg.readyz_require_redis;
    if !fatal {
        let body = json!({ "status": "degraded", "checks": checks, "failing": names });
        return (StatusCode::OK, Json(body)).into_response();
    }
    let details: serde_json::Map<String, serde_json::Value> = failing
        .iter()
        .map(|(name, why)| (name.to_string(), json!([why])))
        .collect();
    let body = json!({
        "error": { "code": "unavailable", "message": format!("{} unavailable", names.join(" and ")), "details": details },
        "checks": checks,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// `GET /`: what this server is and where its endpoints are (the demo and the admin UI only
/// when served), instead of a bare 404.
pub async fn index<A: Adapter>(State(st): State<HttpState<A>>) -> Json<serde_json::Value> {
    let mut links = json!({ "healthz": "/healthz", "readyz": "/readyz", "metrics": "/metrics" });
    if st.app.cfg.demo_dir.is_some() {
        links["demo"] = "/demo/".into();
    }
    if st.app.cfg.admin_ui_dir.is_some() {
        links["admin"] = "/admin-ui/".into();
    }
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "links": links,
    }))
}

/// Prometheus text; with `METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.
pub async fn metrics<A: Adapter>(State(st): State<HttpState<A>>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Some(expected) = &st.app.cfg.metrics_token {
        let given = bearer(&headers).unwrap_or("");
        if !key_matches(std::slice::from_ref(expected), given) {
            return Err(AppError::Unauthorized);
        }
    }
    let text = telemetry::render().ok_or_else(|| AppError::Internal("metrics recorder unavailable".into()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
