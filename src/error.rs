//! The one error type of the gateway, and its two wire forms.
//!
//! Every failure a client or backend can see is an [`AppError`]. Over Socket.IO it becomes the
//! acknowledgement envelope `{ ok: false, error: { code, message, details? } }` (or the `error`
//! event when the client gave no callback); over HTTP it becomes `{ error: { … } }` with the
//! status from [`AppError::status`]. Internal causes are logged, never sent.

use std::{borrow::Cow, collections::BTreeMap};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// Field name → messages, as sent in `details`.
pub type Details = BTreeMap<String, Vec<String>>;

/// Everything that can go wrong on behalf of a client or backend.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input broke a DTO rule; `details` names the fields.
    #[error("validation failed")]
    Validation(Details),
    /// The caller may not do this (reserved room, room claim).
    #[error("forbidden")]
    Forbidden,
    /// The socket is not in the room it names.
    #[error("not a member of the room")]
    NotMember,
    /// A configured bound was reached (rooms per socket).
    #[error("limit exceeded")]
    LimitExceeded,
    /// Too many events or requests.
    #[error("rate limited")]
    RateLimited,
    /// No handler for the event.
    #[error("unknown event")]
    UnknownEvent,
    /// A cursor or path that names nothing.
    #[error("not found")]
    NotFound,
    /// A token that does not verify (`refreshToken`).
    #[error("invalid token")]
    InvalidToken,
    /// A token past its `exp` (`refreshToken`).
    #[error("token expired")]
    TokenExpired,
    /// HTTP: missing or wrong key or token.
    #[error("unauthorized")]
    Unauthorized,
    /// HTTP: malformed JSON or wrong content type.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// HTTP: a method the path does not take.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// HTTP: a body over `MAX_PAYLOAD_BYTES`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// HTTP: request headers over 16 KiB (see [`crate::http::header_limit`]).
    #[error("request headers too large")]
    HeadersTooLarge,
    /// A dependency does not answer (database, Redis, the event proxy's backend).
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// The event proxy's backend refused the event with an error of its own, passed on as it
    /// was given (its code is checked to be well formed: see `crate::proxy`).
    #[error("{message}")]
    Backend {
        /// The backend's code.
        code: String,
        /// The backend's message.
        message: String,
        /// The backend's details, any JSON.
        details: Option<serde_json::Value>,
    },
    /// A database failure of the server's own; logged with its cause, answered as
    /// `internal`. (A database that does not answer becomes [`AppError::Unavailable`]: see
    /// the `From<sqlx::Error>` impl.)
    #[error("internal error")]
    Db(sqlx::Error),
    /// Any other failure of the server's own; logged, answered as `internal`.
    #[error("internal error")]
    Internal(String),
}

/// The `error` object of both wire forms.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorBody {
    /// Stable machine-readable code: one of the contract's, or a proxy backend's own.
    pub code: Cow<'static, str>,
    /// Human-readable text; never carries internal detail.
    pub message: String,
    /// Field → messages for `validation_failed`; a proxy backend's details as it gave them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl AppError {
    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut d = Details::new();
        d.insert(field.to_string(), vec![message.into()]);
        Self::Validation(d)
    }

    /// The contract's code for this error. A backend's own error is labelled `backend_error`
    /// here (this is the metrics label; the wire carries the backend's code: [`AppError::body`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::Forbidden => "forbidden",
            Self::NotMember => "not_member",
            Self::LimitExceeded => "limit_exceeded",
            Self::RateLimited => "rate_limited",
            Self::UnknownEvent => "unknown_event",
            Self::NotFound => "not_found",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::Unauthorized => "unauthorized",
            Self::BadRequest(_) => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Backend { .. } => "backend_error",
            Self::Db(_) | Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Forbidden | Self::NotMember => StatusCode::FORBIDDEN,
            Self::LimitExceeded | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UnknownEvent | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InvalidToken | Self::TokenExpired | Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Backend { .. } => StatusCode::BAD_REQUEST,
            Self::Db(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body both transports send. Logs internal causes as a side effect, once.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Db(e) => tracing::error!(cause = %e, "database error"),
            Self::Internal(e) => tracing::error!(cause = %e, "internal error"),
            _ => {}
        }
        if let Self::Backend { code, message, details } = self {
            return ErrorBody {
                code: Cow::Owned(code.clone()),
                message: message.clone(),
                details: details.clone(),
            };
        }
        let message = match self {
            Self::Db(_) | Self::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let details = match self {
            Self::Validation(d) => serde_json::to_value(d).ok(),
            _ => None,
        };
        ErrorBody {
            code: Cow::Borrowed(self.code()),
            message,
            details,
        }
    }
}

impl From<sqlx::Error> for AppError {
    /// A database that cannot be reached or is too busy to answer is the dependency's fault:
    /// `unavailable` (503) on both transports. Anything else is `internal`.
    fn from(e: sqlx::Error) -> Self {
        if db_unavailable(&e) {
            tracing::warn!(cause = %e, "database unavailable");
            Self::Unavailable("database")
        } else {
            Self::Db(e)
        }
    }
}

/// Whether `e` says the database did not answer, rather than that the query was wrong: no
/// connection in time, a connection refused or cut, a server that broke off the protocol (a
/// proxy in front of PostgreSQL that closes connections at once makes sqlx read a byte that
/// is not there), a server shutting down or out of connections (SQLSTATE class 08,
/// 57P01–57P03, 53300), or SQLite busy or locked.
fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                // SQLite's primary codes in the low byte: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
                || code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

/// The acknowledgement envelope: `{ ok: true, data }` or `{ ok: false, error }`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Ack<T: Serialize> {
    /// Success.
    Ok {
        /// Always `true`.
        ok: bool,
        /// The event's result.
        data: T,
    },
    /// Failure.
    Err {
        /// Always `false`.
        ok: bool,
        /// What went wrong.
        error: ErrorBody,
    },
}

impl<T: Serialize> From<Result<T, AppError>> for Ack<T> {
    fn from(r: Result<T, AppError>) -> Self {
        match r {
            Ok(data) => Ack::Ok { ok: true, data },
            Err(e) => Ack::Err {
                ok: false,
                error: e.body(),
            },
        }
    }
}

#[derive(Serialize)]
struct HttpErrorBody {
    error: ErrorBody,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(HttpErrorBody { error: self.body() })).into_response()
    }
}

/// Shorthand for results whose error is [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_code_and_status() {
        let table: Vec<(AppError, &str, u16)> = vec![
            (AppError::field("roomId", "bad"), "validation_failed", 422),
            (AppError::Forbidden, "forbidden", 403),
            (AppError::NotMember, "not_member", 403),
            (AppError::LimitExceeded, "limit_exceeded", 429),
            (AppError::RateLimited, "rate_limited", 429),
            (AppError::UnknownEvent, "unknown_event", 400),
            (AppError::NotFound, "not_found", 404),
            (AppError::InvalidToken, "invalid_token", 401),
            (AppError::TokenExpired, "token_expired", 401),
            (AppError::Unauthorized, "unauthorized", 401),
            (AppError::BadRequest("x".into()), "bad_request", 400),
            (AppError::MethodNotAllowed, "method_not_allowed", 405),
            (AppError::PayloadTooLarge, "payload_too_large", 413),
            (AppError::HeadersTooLarge, "headers_too_large", 431),
            (AppError::Unavailable("database"), "unavailable", 503),
            (AppError::Internal("boom".into()), "internal", 500),
        ];
        for (err, code, status) in table {
            assert_eq!(err.code(), code);
            assert_eq!(err.status().as_u16(), status, "{code}");
        }
    }

    /// A database that does not answer is `unavailable` on both transports (the same
    /// conversion feeds the ack envelope and the HTTP body); a failing query is `internal`.
    #[test]
    fn an_unreachable_database_is_unavailable_on_both_transports() {
        let refused = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        // What sqlx says when a proxy in front of PostgreSQL accepts and closes at once.
        let cut_at_once = || sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            refused(),
            cut_at_once(),
        ] {
            let err = AppError::from(e);
            assert_eq!((err.code(), err.status().as_u16()), ("unavailable", 503));
            let ack = serde_json::to_value(Ack::<()>::from(Err(err))).unwrap();
            assert_eq!(ack["error"]["code"], "unavailable", "{ack}");
            let res = AppError::from(refused()).into_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        let broken = AppError::from(sqlx::Error::RowNotFound);
        assert_eq!((broken.code(), broken.status().as_u16()), ("internal", 500));
    }

    #[test]
    fn internal_detail_never_leaks() {
        let body = AppError::Internal("password=hunter2".into()).body();
        assert_eq!(body.message, "internal error");
        assert!(body.details.is_none());
    }

    #[test]
    fn a_backend_error_travels_as_given() {
        let err = AppError::Backend {
            code: "out_of_stock".into(),
            message: "only 3 left".into(),
            details: Some(serde_json::json!({ "qty": 3 })),
        };
        let ack = serde_json::to_value(Ack::<()>::from(Err(err))).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"ok": false, "error": {"code": "out_of_stock", "message": "only 3 left", "details": {"qty": 3}}})
        );
    }

    #[test]
    fn ack_envelope_shapes() {
        let ok = serde_json::to_value(Ack::from(Ok::<_, AppError>(serde_json::json!({"roomId": "a"})))).unwrap();
        assert_eq!(ok, serde_json::json!({"ok": true, "data": {"roomId": "a"}}));
        let err = serde_json::to_value(Ack::<()>::from(Err(AppError::field("roomId", "too long")))).unwrap();
        assert_eq!(
            err,
            serde_json::json!({"ok": false, "error": {"code": "validation_failed", "message": "validation failed", "details": {"roomId": ["too long"]}}})
        );
    }
}
