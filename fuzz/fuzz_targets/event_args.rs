//! Fuzzes what a client controls in an event: the argument (any bytes, as JSON or not) of
//! each event, through the same DTO parsing and room checks the handlers use, and the token
//! of a handshake or `refreshToken`. Nothing may panic; every refusal must be a well-formed
//! `validation_failed` (or, for rooms, `forbidden`) with named fields, and no random token
//! may verify.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use sio_gateway::{
    Config,
    auth::{Verifier, handshake_token},
    dto::{self, *},
    error::AppError,
    socket::rooms::client_room,
};
use validator::Validate;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let cfg = Config::from_lookup(|_| None).expect("default config");
        Verifier::hmac(b"fuzzing-secret-fuzzing-secret-0123456789", &cfg)
    })
}

/// Parses `arg` as `T`; a refusal must be `validation_failed` naming at least one field,
/// each with at least one message, and must serialise as the ack envelope does.
fn check<T: DeserializeOwned + Validate>(arg: Option<serde_json::Value>) -> Option<T> {
    match dto::parse::<T>(arg) {
        Ok(v) => Some(v),
        Err(AppError::Validation(details)) => {
            assert!(!details.is_empty(), "validation error without fields");
            assert!(details.values().all(|m| !m.is_empty()), "field without a message");
            let body = AppError::Validation(details).body();
            assert_eq!(body.code, "validation_failed");
            serde_json::to_string(&body).expect("error body serialises");
            None
        }
        Err(other) => panic!("parse returned {other:?}"),
    }
}

fn room(arg: Option<serde_json::Value>) {
    if let Some(args) = check::<RoomArgs>(arg) {
        match client_room(args) {
            Ok(room) => assert!(!room.starts_with("user:") && !room.is_empty() && room.len() <= 128),
            Err(AppError::Forbidden) => {}
            Err(other) => panic!("client_room returned {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    // What socketioxide hands over: the first argument as JSON, or nothing if it is not JSON.
    let arg = serde_json::from_str::<serde_json::Value>(&text).ok();
    match selector % 10 {
        0 => room(arg),
        1 => {
            if let Some(m) = check::<SendMessageArgs>(arg) {
                let text = m.text.expect("validated text");
                assert!((1..=4000).contains(&text.chars().count()) && !text.trim().is_empty());
            }
        }
        2 => {
            if let Some(g) = check::<GetMessagesArgs>(arg) {
                assert!((1..=100).contains(&dto::page_size(g.limit)));
            }
        }
        3 => drop(check::<ListNotificationsArgs>(arg)),
        4 => drop(check::<MarkReadArgs>(arg).map(MarkReadArgs::into_request)),
        5 => drop(check::<RefreshTokenArgs>(arg)),
        6 => drop(check::<CreateNotificationArgs>(arg)),
        7 => drop(check::<EmitArgs>(arg)),
        8 => {
            // The handshake: any auth object, header or query string; a random token never verifies.
            let header = rest.get(..rest.len() / 2);
            if let Ok(token) = handshake_token(arg.as_ref(), header, Some(&text)) {
                assert!(verifier().verify(&token).is_err(), "a random token verified");
            }
        }
        _ => assert!(verifier().verify(&text).is_err(), "a random token verified"),
    }
});
