//! Request DTOs shared by Socket.IO events and the HTTP API, and the one function that turns
//! a client's raw argument into a checked DTO.
//!
//! Every field is an `Option` so that a missing field is reported by `validator` under its
//! own name (`required`), not as a whole-object parse error. Type errors are located with
//! `serde_path_to_error`. Field names in `details` are the wire names (camelCase); an argument
//! that is not an object is reported under `_`. Unknown fields are ignored.

use serde::{Deserialize, de::DeserializeOwned};
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::error::{AppError, Details};

/// Longest room id, in characters.
pub const MAX_ROOM_ID_CHARS: usize = 128;
/// Longest chat message, in Unicode code points.
pub const MAX_TEXT_CHARS: u64 = 4000;
/// Largest page of messages or notifications.
pub const MAX_PAGE: i64 = 100;
/// Default page size.
pub const DEFAULT_PAGE: u32 = 50;

/// Checks a room id: 1–128 characters from `[A-Za-z0-9_.:-]`.
pub fn valid_room_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ROOM_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("pattern").with_message("must be 1 to 128 characters from A-Z a-z 0-9 _ . : -".into()))
    }
}

/// Checks a user id: 1–128 characters from `[A-Za-z0-9_.:@-]` (a token's `sub`).
pub fn valid_user_id(id: &str) -> Result<(), ValidationError> {
    if crate::auth::valid_user_id(id) {
        Ok(())
    } else {
        Err(ValidationError::new("pattern")
            .with_message("must be 1 to 128 characters from A-Z a-z 0-9 _ . : @ -".into()))
    }
}

fn not_blank(text: &str) -> Result<(), ValidationError> {
    if text.chars().all(char::is_whitespace) {
        Err(ValidationError::new("blank").with_message("must not be only white space".into()))
    } else {
        no_nul(text)
    }
}

/// Text with a NUL character cannot be stored by PostgreSQL; it is refused on every backend.
fn no_nul(text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        Err(ValidationError::new("nul").with_message("must not contain the NUL character".into()))
    } else {
        Ok(())
    }
}

/// Length of an id as the gateway writes them: a UUID in its hyphenated form.
const ID_CHARS: usize = 36;

/// Whether `id` has the shape of an id the gateway writes (a hyphenated lowercase UUID: 36
/// characters from `0-9 a-f -`). Anything else names nothing, and never reaches a query: a
/// database may refuse it outright (PostgreSQL refuses NUL in a text parameter).
pub fn is_id(id: &str) -> bool {
    id.len() == ID_CHARS && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

/// A `before` cursor as a query may use it: `Ok(None)` without one, [`AppError::NotFound`]
/// when it cannot name anything (see [`is_id`]).
fn cursor(before: Option<&str>) -> Result<Option<&str>, AppError> {
    match before {
        Some(id) if !is_id(id) => Err(AppError::NotFound),
        other => Ok(other),
    }
}

fn valid_cursor(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > 64 {
        Err(ValidationError::new("cursor").with_message("must be an id of 1 to 64 characters".into()))
    } else {
        Ok(())
    }
}

/// `joinRoom`, `leaveRoom`, `getRoomMembers`, `typing`: `{ roomId }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct RoomArgs {
    /// The room.
    #[validate(required(message = "is required"), custom(function = "valid_room_id"))]
    pub room_id: Option<String>,
}

/// The server API's `POST /api/rooms/{roomId}/join` and `/leave`: `{ userId }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct UserArgs {
    /// The user whose sockets join or leave.
    #[validate(required(message = "is required"), custom(function = "valid_user_id"))]
    pub user_id: Option<String>,
}

/// `sendMessage`: `{ roomId, text }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageArgs {
    /// The room.
    #[validate(required(message = "is required"), custom(function = "valid_room_id"))]
    pub room_id: Option<String>,
    /// 1–4000 characters, not only white space; stored unchanged.
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 4000, message = "must be 1 to 4000 characters"),
        custom(function = "not_blank")
    )]
    pub text: Option<String>,
}

/// `getMessages`: `{ roomId, limit?, before? }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct GetMessagesArgs {
    /// The room.
    #[validate(required(message = "is required"), custom(function = "valid_room_id"))]
    pub room_id: Option<String>,
    /// Page size, 1–100 (default 50).
    #[validate(range(min = 1, max = 100, message = "must be an integer from 1 to 100"))]
    pub limit: Option<i64>,
    /// Return messages older than this id.
    #[validate(custom(function = "valid_cursor"))]
    pub before: Option<String>,
}

impl GetMessagesArgs {
    /// The `before` cursor for the query; one that cannot be a message id is `not_found`.
    pub fn cursor(&self) -> Result<Option<&str>, AppError> {
        cursor(self.before.as_deref())
    }
}

/// `listNotifications` and `GET /api/notifications`: `{ limit?, before?, unreadOnly? }`.
#[derive(Debug, Default, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct ListNotificationsArgs {
    /// Page size, 1–100 (default 50).
    #[validate(range(min = 1, max = 100, message = "must be an integer from 1 to 100"))]
    pub limit: Option<i64>,
    /// Return notifications older than this id.
    #[validate(custom(function = "valid_cursor"))]
    pub before: Option<String>,
    /// Only unread ones.
    pub unread_only: Option<bool>,
}

impl ListNotificationsArgs {
    /// The `before` cursor for the query; one that cannot be a notification id is `not_found`.
    pub fn cursor(&self) -> Result<Option<&str>, AppError> {
        cursor(self.before.as_deref())
    }
}

/// `markRead` and `POST /api/notifications/read`: `{ ids }` or `{ all: true }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
#[validate(schema(function = "ids_or_all", skip_on_field_errors = true))]
pub struct MarkReadArgs {
    /// 1–100 notification ids.
    #[validate(
        length(min = 1, max = 100, message = "must hold 1 to 100 ids"),
        custom(function = "valid_ids")
    )]
    pub ids: Option<Vec<String>>,
    /// `true` marks every notification of the user.
    pub all: Option<bool>,
}

fn valid_ids(ids: &[String]) -> Result<(), ValidationError> {
    ids.iter().try_for_each(|id| valid_cursor(id))
}

/// Object-level rules report under the field named by the error's code (see `collect`).
fn ids_or_all(args: &MarkReadArgs) -> Result<(), ValidationError> {
    match (&args.ids, args.all) {
        (Some(_), None | Some(false)) | (None, Some(true)) => Ok(()),
        (Some(_), Some(true)) => {
            Err(ValidationError::new("all").with_message("give either ids or all, not both".into()))
        }
        (None, Some(false)) => {
            Err(ValidationError::new("all").with_message("must be true when no ids are given".into()))
        }
        (None, None) => Err(ValidationError::new("ids").with_message("give ids or all: true".into())),
    }
}

/// What `markRead` asks for, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkRead {
    /// These ids.
    Ids(Vec<String>),
    /// Every notification of the user.
    All,
}

impl MarkReadArgs {
    /// The checked request. Ids that cannot be notification ids name nothing, so they are
    /// dropped here and never reach a query (the list may end up empty).
    pub fn into_request(self) -> MarkRead {
        match self.ids {
            Some(ids) => MarkRead::Ids(ids.into_iter().filter(|id| is_id(id)).collect()),
            None => MarkRead::All,
        }
    }
}

/// `refreshToken`: `{ token }`.
#[derive(Debug, Deserialize, Validate)]
pub struct RefreshTokenArgs {
    /// The new token.
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 8192, message = "must be 1 to 8192 characters")
    )]
    pub token: Option<String>,
}

/// `POST /api/notifications`: `{ userId, type, title, message, data? }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct CreateNotificationArgs {
    /// The recipient.
    #[validate(required(message = "is required"), custom(function = "valid_user_id"))]
    pub user_id: Option<String>,
    /// Kind, 1–64 characters.
    #[serde(rename = "type")]
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 64, message = "must be 1 to 64 characters"),
        custom(function = "no_nul")
    )]
    pub kind: Option<String>,
    /// Title, 1–200 characters.
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "no_nul")
    )]
    pub title: Option<String>,
    /// Body, 1–2000 characters.
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 2000, message = "must be 1 to 2000 characters"),
        custom(function = "no_nul")
    )]
    pub message: Option<String>,
    /// Any JSON, at most 16 KiB once serialized.
    #[serde(default)]
    #[validate(custom(function = "small_data"))]
    pub data: Option<serde_json::Value>,
}

/// Largest `data` of a notification, serialized.
pub const MAX_DATA_BYTES: usize = 16 * 1024;

fn small_data(v: &serde_json::Value) -> Result<(), ValidationError> {
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) > MAX_DATA_BYTES {
        Err(ValidationError::new("size").with_message("must be at most 16 KiB of JSON".into()))
    } else {
        Ok(())
    }
}

/// `POST /api/emit`: `{ event, data?, room?, userId? }`.
#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
#[validate(schema(function = "one_target", skip_on_field_errors = true))]
pub struct EmitArgs {
    /// Event name, 1–64 characters, not one of Socket.IO's reserved names.
    #[validate(
        required(message = "is required"),
        length(min = 1, max = 64, message = "must be 1 to 64 characters"),
        custom(function = "not_reserved")
    )]
    pub event: Option<String>,
    /// Payload, any JSON (`null` included); absent means an event with no argument.
    #[serde(default, deserialize_with = "present")]
    pub data: Option<serde_json::Value>,
    /// Target room.
    #[validate(custom(function = "valid_room_id"))]
    pub room: Option<String>,
    /// Target user (`user:<userId>`).
    #[validate(custom(function = "valid_user_id"))]
    pub user_id: Option<String>,
}

/// Event names Socket.IO reserves; emitting them would confuse clients.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

fn not_reserved(event: &str) -> Result<(), ValidationError> {
    if RESERVED_EVENTS.contains(&event) {
        Err(ValidationError::new("reserved").with_message("is a reserved Socket.IO event name".into()))
    } else if event.chars().any(char::is_control) {
        Err(ValidationError::new("pattern").with_message("must not contain control characters".into()))
    } else {
        Ok(())
    }
}

/// `Some` for a field that is present, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn one_target(args: &EmitArgs) -> Result<(), ValidationError> {
    if args.room.is_some() && args.user_id.is_some() {
        Err(ValidationError::new("userId").with_message("give room or userId, not both".into()))
    } else {
        Ok(())
    }
}

/// Turns a client's argument into a checked DTO, or `validation_failed` naming the fields.
pub fn parse<T: DeserializeOwned + Validate>(arg: Option<serde_json::Value>) -> Result<T, AppError> {
    let value = match arg {
        Some(v @ serde_json::Value::Object(_)) => v,
        _ => return Err(AppError::field("_", "expected one object argument")),
    };
    let dto: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e
            .path()
            .iter()
            .next()
            .map(|seg| seg.to_string())
            .filter(|s| !s.is_empty() && s != ".");
        AppError::field(field.as_deref().unwrap_or("_"), e.inner().to_string())
    })?;
    dto.validate().map_err(validation_error)?;
    Ok(dto)
}

/// Converts validator's errors into `validation_failed` with camelCase field names.
pub fn validation_error(errors: ValidationErrors) -> AppError {
    let mut details = Details::new();
    collect(&errors, &mut details);
    AppError::Validation(details)
}

fn collect(errors: &ValidationErrors, details: &mut Details) {
    for (field, kind) in errors.errors() {
        match kind {
            // Object-level (schema) rules name their field in the error's code.
            ValidationErrorsKind::Field(list) if *field == "__all__" => {
                for e in list {
                    details.entry(e.code.to_string()).or_default().push(message(e));
                }
            }
            ValidationErrorsKind::Field(list) => {
                details
                    .entry(camel_case(field))
                    .or_default()
                    .extend(list.iter().map(message));
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, details),
            ValidationErrorsKind::List(items) => items.values().for_each(|inner| collect(inner, details)),
        }
    }
}

fn message(e: &ValidationError) -> String {
    match &e.message {
        Some(m) => m.to_string(),
        None => format!("is invalid ({})", e.code),
    }
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if snake == "kind" { "type".into() } else { out }
}

/// The page size of a request: its `limit`, or the default.
pub fn page_size(limit: Option<i64>) -> u32 {
    limit.map(|l| l.clamp(1, MAX_PAGE) as u32).unwrap_or(DEFAULT_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn details(err: AppError) -> Details {
        match err {
            AppError::Validation(d) => d,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn non_objects_are_reported_under_underscore() {
        for v in [
            None,
            Some(json!("x")),
            Some(json!([1])),
            Some(json!(3)),
            Some(json!(null)),
        ] {
            let d = details(parse::<RoomArgs>(v).unwrap_err());
            assert!(d.contains_key("_"), "{d:?}");
        }
    }

    #[test]
    fn fields_are_named_in_camel_case() {
        let d = details(parse::<RoomArgs>(Some(json!({}))).unwrap_err());
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["roomId"]);
        let d = details(parse::<RoomArgs>(Some(json!({"roomId": 5}))).unwrap_err());
        assert!(d.contains_key("roomId"), "{d:?}");
        let d = details(parse::<RoomArgs>(Some(json!({"roomId": "a b"}))).unwrap_err());
        assert!(d.contains_key("roomId"), "{d:?}");
        let d = details(parse::<GetMessagesArgs>(Some(json!({"roomId": "r", "limit": 101}))).unwrap_err());
        assert!(d.contains_key("limit"), "{d:?}");
        let d = details(parse::<GetMessagesArgs>(Some(json!({"roomId": "r", "limit": 1.5}))).unwrap_err());
        assert!(d.contains_key("limit"), "{d:?}");
        let d = details(
            parse::<CreateNotificationArgs>(Some(json!({"userId": "u", "title": "t", "message": "m"}))).unwrap_err(),
        );
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["type"]);
    }

    #[test]
    fn room_id_rules() {
        assert!(parse::<RoomArgs>(Some(json!({"roomId": "a.b:c_d-1", "extra": true}))).is_ok());
        assert!(parse::<RoomArgs>(Some(json!({"roomId": "x".repeat(128)}))).is_ok());
        for bad in ["", "é", "a/b", &"x".repeat(129)] {
            assert!(parse::<RoomArgs>(Some(json!({ "roomId": bad }))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_counts_code_points_and_refuses_blank() {
        let emoji = "😀".repeat(4000);
        let ok: SendMessageArgs = parse(Some(json!({"roomId": "r", "text": emoji}))).unwrap();
        assert_eq!(ok.text.unwrap().chars().count(), 4000);
        for bad in [String::new(), " \n\t ".into(), "a".repeat(4001)] {
            let d = details(parse::<SendMessageArgs>(Some(json!({"roomId": "r", "text": bad}))).unwrap_err());
            assert!(d.contains_key("text"));
        }
        let kept: SendMessageArgs = parse(Some(json!({"roomId": "r", "text": "  hi  "}))).unwrap();
        assert_eq!(kept.text.unwrap(), "  hi  ");
    }

    #[test]
    fn mark_read_takes_ids_or_all() {
        assert_eq!(
            parse::<MarkReadArgs>(Some(json!({"all": true})))
                .unwrap()
                .into_request(),
            MarkRead::All
        );
        assert!(matches!(
            parse::<MarkReadArgs>(Some(json!({"ids": ["a"]})))
                .unwrap()
                .into_request(),
            MarkRead::Ids(_)
        ));
        for bad in [
            json!({}),
            json!({"all": false}),
            json!({"ids": []}),
            json!({"ids": ["a"], "all": true}),
            json!({"ids": "a"}),
        ] {
            assert!(parse::<MarkReadArgs>(Some(bad.clone())).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert!(parse::<MarkReadArgs>(Some(json!({ "ids": many }))).is_err());
    }

    /// Ids that reach a query have an id's shape; others name nothing before any query runs:
    /// a cursor is `not_found`, a `markRead` id is dropped.
    #[test]
    fn only_id_shaped_ids_reach_a_query() {
        let id = "0190abcd-0000-7000-8000-00000000000f";
        assert!(is_id(id));
        let (upper, long) = (id.to_uppercase(), format!("{id}0"));
        for bad in ["\0", "nope", "0190abcd-0000-7000-8000-00000000000\0", &upper, &long] {
            assert!(!is_id(bad), "{bad:?}");
            let page: ListNotificationsArgs = parse(Some(json!({ "before": bad }))).unwrap();
            assert!(matches!(page.cursor(), Err(AppError::NotFound)), "{bad:?}");
            let msgs: GetMessagesArgs = parse(Some(json!({ "roomId": "r", "before": bad }))).unwrap();
            assert!(matches!(msgs.cursor(), Err(AppError::NotFound)), "{bad:?}");
        }
        let page: ListNotificationsArgs = parse(Some(json!({ "before": id }))).unwrap();
        assert_eq!(page.cursor().unwrap(), Some(id));
        let read: MarkReadArgs = parse(Some(json!({ "ids": ["\0", id, "x"] }))).unwrap();
        assert_eq!(read.into_request(), MarkRead::Ids(vec![id.to_string()]));
    }

    #[test]
    fn object_rules_name_a_field() {
        let d = details(parse::<MarkReadArgs>(Some(json!({}))).unwrap_err());
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["ids"]);
        let d = details(parse::<MarkReadArgs>(Some(json!({"ids": ["a"], "all": true}))).unwrap_err());
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["all"]);
        assert!(parse::<MarkReadArgs>(Some(json!({"ids": ["a"], "all": false}))).is_ok());
        let d = details(parse::<EmitArgs>(Some(json!({"event": "x", "room": "r", "userId": "u"}))).unwrap_err());
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["userId"]);
    }

    /// `refreshToken`'s `token` follows the DTO rules: missing, not a string or empty is
    /// `validation_failed` naming `token` (contract v1.2, section 4).
    #[test]
    fn refresh_token_must_be_a_non_empty_string() {
        for bad in [
            json!({}),
            json!({"token": null}),
            json!({"token": ""}),
            json!({"token": 5}),
            json!({"token": ["t"]}),
        ] {
            let d = details(parse::<RefreshTokenArgs>(Some(bad.clone())).unwrap_err());
            assert_eq!(d.keys().collect::<Vec<_>>(), vec!["token"], "{bad}");
        }
        assert!(parse::<RefreshTokenArgs>(Some(json!({"token": "a.b.c"}))).is_ok());
    }

    #[test]
    fn emit_data_absent_differs_from_null() {
        assert!(parse::<EmitArgs>(Some(json!({"event": "x"}))).unwrap().data.is_none());
        assert_eq!(
            parse::<EmitArgs>(Some(json!({"event": "x", "data": null})))
                .unwrap()
                .data,
            Some(json!(null))
        );
    }

    #[test]
    fn nul_is_refused_in_stored_text() {
        let d = details(parse::<SendMessageArgs>(Some(json!({"roomId": "r", "text": "a\0b"}))).unwrap_err());
        assert!(d.contains_key("text"));
        let n = json!({"userId": "u", "type": "t", "title": "a\0", "message": "m"});
        assert!(details(parse::<CreateNotificationArgs>(Some(n)).unwrap_err()).contains_key("title"));
    }

    #[test]
    fn emit_refuses_reserved_names_and_two_targets() {
        for name in RESERVED_EVENTS {
            assert!(parse::<EmitArgs>(Some(json!({ "event": name }))).is_err());
        }
        assert!(parse::<EmitArgs>(Some(json!({"event": "x", "room": "r", "userId": "u"}))).is_err());
        assert!(parse::<EmitArgs>(Some(json!({"event": "x", "room": "r"}))).is_ok());
    }

    #[test]
    fn nested_too_deep_is_a_validation_error() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let text = format!(r#"{{"roomId":"r","text":{deep}}}"#);
        // serde_json stops at 128 levels while parsing; callers turn that into validation_failed.
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }
}
