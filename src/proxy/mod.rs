//! The event proxy (contract section 10.2): client events that the gateway does not know go
//! to the backend's `PROXY_URL`, and the backend's answer becomes the acknowledgement.
//!
//! One pooled HTTP client (keep-alive) serves every call of the node; a semaphore bounds the
//! calls waiting at once (`PROXY_MAX_IN_FLIGHT`), and each call has its deadline
//! (`PROXY_TIMEOUT_MS`), so a slow or absent backend costs its own callers and nobody else.
//! Each call is signed (see [`crate::outbound`]) and carries the user and socket ids, never
//! the token.

pub mod schemas;

use std::time::Instant;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::{
    config::{ConfigError, ProxyConfig},
    error::{AppError, Result},
    outbound, telemetry,
};
use schemas::Schemas;

/// Largest backend answer read; anything longer is `unavailable`.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The body of a call: `{ event, userId, socketId, data }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Call<'a> {
    event: &'a str,
    user_id: &'a str,
    socket_id: &'a str,
    data: &'a serde_json::Value,
}

/// This node's link to the backend's event endpoint.
pub struct EventProxy {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Vec<u8>,
    patterns: Vec<String>,
    schemas: Schemas,
    in_flight: Semaphore,
}

/// Why a call did not give the backend's own answer; the `outcome` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// More than `PROXY_MAX_IN_FLIGHT` calls wait already.
    Saturated,
    /// No answer within `PROXY_TIMEOUT_MS`.
    Timeout,
    /// No connection (refused, reset, DNS).
    Unreachable,
    /// 5xx.
    ServerError,
    /// An answer in none of the contract's shapes.
    BadAnswer,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Self::Saturated => "saturated",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::ServerError => "server_error",
            Self::BadAnswer => "bad_answer",
        }
    }
}

impl EventProxy {
    /// Builds the client and compiles the schemas of `EVENT_SCHEMAS_DIR`; an error names the
    /// variable or schema file at fault.
    pub fn new(cfg: &ProxyConfig) -> std::result::Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| ConfigError::invalid("PROXY_URL", e.to_string()))?;
        let schemas = match &cfg.schemas_dir {
            Some(dir) => Schemas::load(dir).map_err(|e| ConfigError::invalid("EVENT_SCHEMAS_DIR", e))?,
            None => Schemas::default(),
        };
        let client = outbound::client(cfg.timeout)
            .map_err(|e| ConfigError::invalid("PROXY_URL", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            secret: cfg.secret.clone(),
            patterns: cfg.events.clone(),
            schemas,
            in_flight: Semaphore::new(cfg.max_in_flight),
        })
    }

    /// The metrics label of `event` when the proxy takes it: the name itself when
    /// `PROXY_EVENTS` lists it or it has a schema, else the pattern it matched (so clients
    /// cannot grow the label set). `None`: not proxied.
    pub fn label(&self, event: &str) -> Option<String> {
        if self.patterns.iter().any(|p| p == event) {
            return Some(event.to_string());
        }
        if self.schemas.has(event) && self.patterns.iter().any(|p| matches(p, event)) {
            return Some(event.to_string());
        }
        self.patterns
            .iter()
            .find(|p| matches(p, event))
            .map(|p| if p.ends_with('*') { p.clone() } else { event.to_string() })
    }

    /// Validates a proxied event's argument and calls the backend with it; the backend's
    /// answer as the ack's `data`, or the error to answer with. `label` is from
    /// [`EventProxy::label`].
    pub async fn forward(
        &self,
        event: &str,
        label: String,
        user_id: &str,
        socket_id: &str,
        arg: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let data = match arg {
            Some(data @ serde_json::Value::Object(_)) => data,
            _ => {
                telemetry::record_proxy_call(label, "invalid", None);
                return Err(AppError::field("_", "must be one JSON object"));
            }
        };
        if let Err(e) = self.schemas.check(event, &data) {
            telemetry::record_proxy_call(label, "invalid", None);
            return Err(e);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            telemetry::record_proxy_call(label, Failure::Saturated.label(), None);
            return Err(AppError::Unavailable("backend"));
        };
        let started = Instant::now();
        let result = self.call(event, user_id, socket_id, &data).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Answer::Refused(AppError::Backend { .. })) => "rejected",
            Err(Answer::Refused(_)) => Failure::BadAnswer.label(),
            Err(Answer::Failed(f)) => f.label(),
        };
        telemetry::record_proxy_call(label, outcome, Some(started.elapsed()));
        result.map_err(|a| match a {
            Answer::Refused(e) => e,
            Answer::Failed(_) => AppError::Unavailable("backend"),
        })
    }

    async fn call(
        &self,
        event: &str,
        user_id: &str,
        socket_id: &str,
        data: &serde_json::Value,
    ) -> std::result::Result<serde_json::Value, Answer> {
        let body = serde_json::to_vec(&Call {
            event,
            user_id,
            socket_id,
            data,
        })
        .map_err(|_| Answer::Failed(Failure::BadAnswer))?;
        let res = outbound::signed_post(&self.client, self.url.clone(), &self.secret, body)
            .send()
            .await
            .map_err(|e| Answer::Failed(transport_failure(&e)))?;
        let status = res.status().as_u16();
        let text = read_capped(res).await?;
        interpret(status, &text)
    }
}

/// What came back, when it was not a success.
enum Answer {
    /// The backend refused the event with an error of its own (or a malformed one: `internal`).
    Refused(AppError),
    /// No usable answer: `unavailable`.
    Failed(Failure),
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Unreachable
    }
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_capped(mut res: reqwest::Response) -> std::result::Result<Vec<u8>, Answer> {
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(Answer::Failed(Failure::BadAnswer));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(Answer::Failed(transport_failure(&e))),
        }
    }
}

/// The contract's reading of an answer: a 2xx JSON object's `data` (absent: `null`); a 4xx
/// JSON `{ error: { code, message, details? } }` passed on when its code is well formed
/// (`internal` when not); anything else `unavailable`.
fn interpret(status: u16, body: &[u8]) -> std::result::Result<serde_json::Value, Answer> {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match (status, parsed) {
        (200..=299, Some(serde_json::Value::Object(mut answer))) => {
            Ok(answer.remove("data").unwrap_or(serde_json::Value::Null))
        }
        (400..=499, Some(serde_json::Value::Object(mut answer))) => match answer.remove("error") {
            Some(serde_json::Value::Object(mut error)) => {
                let code = match error.remove("code") {
                    Some(serde_json::Value::String(code)) if well_formed_code(&code) => code,
                    _ => {
                        return Err(Answer::Refused(AppError::Internal(
                            "the proxy backend answered an error with a malformed code".into(),
                        )));
                    }
                };
                let message = match error.remove("message") {
                    Some(serde_json::Value::String(m)) => m,
                    _ => String::new(),
                };
                Err(Answer::Refused(AppError::Backend {
                    code,
                    message,
                    details: error.remove("details"),
                }))
            }
            _ => Err(Answer::Failed(Failure::BadAnswer)),
        },
        (500..=599, _) => Err(Answer::Failed(Failure::ServerError)),
        _ => Err(Answer::Failed(Failure::BadAnswer)),
    }
}

/// `^[a-z][a-z0-9_]{0,63}$`.
fn well_formed_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && code.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether a `PROXY_EVENTS` entry matches `event` (a trailing `*` matches any suffix).
pub fn matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event.starts_with(prefix),
        None => pattern == event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(status: u16, body: &str) -> std::result::Result<serde_json::Value, String> {
        interpret(status, body.as_bytes()).map_err(|a| match a {
            Answer::Refused(e) => e.body().code.to_string(),
            Answer::Failed(f) => f.label().to_string(),
        })
    }

    #[test]
    fn answers_map_as_the_contract_says() {
        assert_eq!(read(200, r#"{"data":{"id":1}}"#), Ok(json!({"id": 1})));
        assert_eq!(read(201, r#"{}"#), Ok(serde_json::Value::Null));
        assert_eq!(read(200, r#"[1]"#), Err("bad_answer".into()));
        assert_eq!(read(200, "ok"), Err("bad_answer".into()));
        assert_eq!(read(204, ""), Err("bad_answer".into()));
        assert_eq!(
            read(422, r#"{"error":{"code":"out_of_stock","message":"no"}}"#),
            Err("out_of_stock".into())
        );
        assert_eq!(
            read(400, r#"{"error":{"code":"Bad-Code","message":"no"}}"#),
            Err("internal".into())
        );
        assert_eq!(read(400, r#"{"error":{"message":"no"}}"#), Err("internal".into()));
        assert_eq!(read(404, r#"{"oops":1}"#), Err("bad_answer".into()));
        assert_eq!(read(400, "<html>"), Err("bad_answer".into()));
        assert_eq!(read(500, r#"{"data":1}"#), Err("server_error".into()));
        assert_eq!(read(302, r#"{"data":1}"#), Err("bad_answer".into()));
    }

    #[test]
    fn a_passed_error_keeps_its_message_and_details() {
        let Err(Answer::Refused(e)) = interpret(
            409,
            br#"{"error":{"code":"taken","message":"seat taken","details":{"seat":["taken"]}}}"#,
        ) else {
            panic!("expected a refusal");
        };
        let body = e.body();
        assert_eq!((body.code.as_ref(), body.message.as_str()), ("taken", "seat taken"));
        assert_eq!(body.details, Some(json!({"seat": ["taken"]})));
    }

    #[test]
    fn codes_follow_the_pattern() {
        assert!(well_formed_code("a") && well_formed_code("out_of_stock2"));
        assert!(!well_formed_code("") && !well_formed_code("_a") && !well_formed_code("1a"));
        assert!(!well_formed_code("aB") && !well_formed_code(&"a".repeat(65)));
        assert!(well_formed_code(&"a".repeat(64)));
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(matches("*", "anything") && matches("game.*", "game.move"));
        assert!(matches("game.*", "game.") && !matches("game.*", "gam"));
        assert!(matches("order.place", "order.place") && !matches("order.place", "order.placed"));
    }
}
