//! Extractors that check HTTP requests before a handler runs; each rejection is an
//! [`AppError`], so every failure answers in the contract's JSON shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use validator::Validate;

use super::HttpState;
use crate::{dto, error::AppError};
use socketioxide::adapter::Adapter;

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    crate::auth::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// A request made with one of the service keys of `API_KEYS`.
pub struct ApiKey;

/// Compares `given` with each key in constant time (per key), so timing tells nothing of
/// how much of a key matched.
pub fn key_matches(keys: &[String], given: &str) -> bool {
    keys.iter().fold(false, |found, k| {
        found | bool::from(k.as_bytes().ct_eq(given.as_bytes()))
    })
}

impl<A: Adapter> FromRequestParts<HttpState<A>> for ApiKey {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, st: &HttpState<A>) -> Result<Self, AppError> {
        match bearer(&parts.headers) {
            Some(key) if key_matches(&st.app.api_keys, key) => Ok(ApiKey),
            _ => Err(AppError::Unauthorized),
        }
    }
}

/// A request made with a user's JWT; holds the user id.
pub struct UserAuth(pub String);

impl<A: Adapter> FromRequestParts<HttpState<A>> for UserAuth {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, st: &HttpState<A>) -> Result<Self, AppError> {
        let token = bearer(&parts.headers).ok_or(AppError::Unauthorized)?;
        let claims = st.app.verifier.verify(token).map_err(|_| AppError::Unauthorized)?;
        Ok(UserAuth(claims.sub))
    }
}

/// A JSON body turned into a checked DTO: 400 for a wrong content type or malformed JSON,
/// 413 over `MAX_PAYLOAD_BYTES`, 422 with field details for a DTO rule.
pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = AppError;
    async fn from_request(req: Request, st: &S) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(AppError::BadRequest("expected Content-Type: application/json".into()));
        }
        let body = Bytes::from_request(req, st).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest("could not read the body".into())
            }
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
        Ok(ValidatedJson(dto::parse(Some(value))?))
    }
}

/// The paging parameters of a query string (`limit`, `before`) as the JSON a DTO reads:
/// query strings are text, so `limit` is read as a number here and both are then checked like
/// the socket event's arguments.
pub fn page_query(
    q: &std::collections::HashMap<String, String>,
) -> Result<serde_json::Map<String, serde_json::Value>, AppError> {
    let mut v = serde_json::Map::new();
    if let Some(l) = q.get("limit") {
        let n: i64 = l
            .parse()
            .map_err(|_| AppError::field("limit", "must be an integer from 1 to 100"))?;
        v.insert("limit".into(), n.into());
    }
    if let Some(b) = q.get("before") {
        v.insert("before".into(), b.clone().into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        let keys = vec!["alpha-key".to_string(), "beta-key".to_string()];
        assert!(key_matches(&keys, "beta-key"));
        assert!(!key_matches(&keys, "beta-ke"));
        assert!(!key_matches(&keys, "beta-key2"));
        assert!(!key_matches(&keys, ""));
        assert!(!key_matches(&[], "x"));
    }
}
