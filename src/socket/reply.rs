//! The `Reply` and `Args` extractors: how every event handler receives its argument and
//! answers, with the acknowledgement envelope when the client asked for one and the `error`
//! event when it did not.

use std::{convert::Infallible, sync::Arc, time::Instant};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, SeqAccess, Visitor},
};
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, TryData},
    handler::{FromMessageParts, Value},
    socket::Socket,
};
use socketioxide_core::parser::FirstElement;

use crate::{
    error::{Ack, AppError},
    node::session::SessionRef,
    telemetry,
};

/// The event's first argument as JSON, or `None` when there is none, it is not JSON, or the
/// packet as a whole is not valid JSON (socketioxide reads the elements it needs and would
/// let trailing garbage through; such a packet is refused like any other malformed input).
pub struct Args(pub Option<serde_json::Value>);

impl<A: Adapter> FromMessageParts<A> for Args {
    type Error = Infallible;
    fn from_message_parts(s: &Arc<Socket<A>>, v: &mut Value, ack: &Option<i64>) -> Result<Self, Infallible> {
        if let Some(text) = v.as_str()
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
        {
            return Ok(Args(None));
        }
        let TryData(parsed) = TryData::<ArgValue>::from_message_parts(s, v, ack)?;
        Ok(Args(parsed.ok().map(|a| a.0)))
    }
}

/// A JSON value in which each binary attachment becomes `{ "_binary": <length> }`: binary
/// data in a field the DTO ignores is ignored, and in a field it reads is a type error that
/// names that field.
struct ArgValue(serde_json::Value);

impl<'de> Deserialize<'de> for ArgValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArgVisitor)
    }
}

struct ArgVisitor;

impl<'de> Visitor<'de> for ArgVisitor {
    type Value = ArgValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value or binary data")
    }
    fn visit_bool<E>(self, v: bool) -> Result<ArgValue, E> {
        Ok(ArgValue(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ArgValue, E> {
        Ok(ArgValue(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ArgValue, E> {
        Ok(ArgValue(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ArgValue, E> {
        serde_json::Number::from_f64(v)
            .map(|n| ArgValue(n.into()))
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<ArgValue, E> {
        Ok(ArgValue(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<ArgValue, E> {
        Ok(ArgValue(v.into()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<ArgValue, E> {
        Ok(ArgValue(serde_json::json!({ "_binary": v.len() })))
    }
    fn visit_unit<E>(self) -> Result<ArgValue, E> {
        Ok(ArgValue(serde_json::Value::Null))
    }
    fn visit_none<E>(self) -> Result<ArgValue, E> {
        Ok(ArgValue(serde_json::Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ArgValue, D::Error> {
        ArgValue::deserialize(d)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<ArgValue, S::Error> {
        let mut items = Vec::new();
        while let Some(ArgValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(ArgValue(serde_json::Value::Array(items)))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ArgValue, M::Error> {
        let mut object = serde_json::Map::new();
        while let Some((k, ArgValue(v))) = map.next_entry::<String, ArgValue>()? {
            object.insert(k, v);
        }
        Ok(ArgValue(serde_json::Value::Object(object)))
    }
}

/// Answers one event: the ack envelope if the client passed a callback, otherwise (on failure
/// only) the `error` event. Also records the event's outcome and duration.
pub struct Reply<A: Adapter> {
    ack: AckSender<A>,
    wants_ack: bool,
    event: String,
    /// The metrics label, when not the one [`super::event_label`] gives.
    label: Option<&'static str>,
    started: Instant,
}

/// The payload of the `error` event.
#[derive(Debug, Serialize)]
pub struct ErrorEvent<'a> {
    /// The contract's code (or a proxy backend's own).
    pub code: std::borrow::Cow<'static, str>,
    /// Human-readable text.
    pub message: String,
    /// The event that failed.
    pub event: &'a str,
    /// Field → messages for `validation_failed`; a proxy backend's details as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;
    fn from_message_parts(s: &Arc<Socket<A>>, v: &mut Value, ack: &Option<i64>) -> Result<Self, Infallible> {
        let event = Event::from_message_parts(s, v, ack)
            .map(|e| e.0)
            .ok()
            .or_else(|| escaped_event_name(v))
            .unwrap_or_default();
        let sender = AckSender::from_message_parts(s, v, ack)?;
        Ok(Reply {
            ack: sender,
            wants_ack: ack.is_some(),
            event,
            label: None,
            started: Instant::now(),
        })
    }
}

/// The event name of a text packet when it is written with a JSON escape
/// (`"joinRoom\u0000"`): socketioxide's `Event` reads names only as borrowed text.
fn escaped_event_name(v: &Value) -> Option<String> {
    let text = v.as_str()?;
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(FirstElement::<String>::default(), &mut de).ok()
}

impl<A: Adapter> Reply<A> {
    /// The name of the event being answered.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// Records the event under `label` in the metrics instead of its own (proxied events).
    pub fn labelled(mut self, label: &'static str) -> Self {
        self.label = Some(label);
        self
    }

    /// Sends the outcome. A socket that is disconnecting (it sent a namespace disconnect, or
    /// the server cut it) gets nothing: its events after that point are dropped unanswered.
    pub fn send<T: Serialize>(self, socket: &SocketRef<A>, result: Result<T, AppError>) {
        if socket
            .extensions
            .get::<SessionRef>()
            .is_some_and(|ses| ses.is_closing())
        {
            return;
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let label = self.label.unwrap_or_else(|| super::event_label(&self.event));
        telemetry::record_event(label, outcome, self.started.elapsed());
        if self.wants_ack {
            if let Err(e) = self.ack.send(&Ack::from(result)) {
                tracing::debug!(cause = %e, event = %self.event, "ack not sent");
            }
        } else if let Err(err) = result {
            let body = err.body();
            let payload = ErrorEvent {
                code: body.code,
                message: body.message,
                event: &self.event,
                details: body.details,
            };
            if let Err(e) = socket.emit("error", &payload) {
                tracing::debug!(cause = %e, event = %self.event, "error event not sent");
            }
        }
    }
}
