//! # sio-gateway
//!
//! A Socket.IO-compatible real-time gateway: clients connect with the ordinary
//! `socket.io-client`, authenticate with a JWT in the handshake, land in the room
//! `user:<sub>`, join rooms, chat with acknowledgements, and receive notifications that
//! backends post over HTTP (stored first, then pushed to every tab of the user).
//!
//! # Layout
//!
//! The modules form layers, and each uses only those below it (`tests/layers.rs` fails on an
//! import cycle). From the bottom:
//!
//! 1. **Foundation** — [`config`] (every environment variable, validated at start),
//!    [`error`] (the one error enum and its two wire forms), [`clock`] (wall-clock time and
//!    its RFC 3339 form), [`telemetry`] (logs, metrics),
//!    [`secrets`] (generated secret files), [`shutdown`] (stop signals), [`outbound`] (the
//!    HTTP client and HMAC signature of calls to a backend), [`background`] (a runtime of
//!    lower priority for work that may wait while clients are served), [`cli`].
//! 2. **Rules** — [`auth`] (token sources, verification, signing) and [`dto`] (request DTOs
//!    and their validation, shared by both fronts).
//! 3. **Storage and transport** — [`db`] (SQLite/PostgreSQL, one module per table, the
//!    per-user ordering of notification ids) and [`cluster`] (several nodes over Redis: the
//!    adapter's driver, notification fan-out, cross-node questions, the per-user limit; it
//!    knows the layers above only through [`cluster::LocalNode`]), [`proxy`] (client events
//!    the gateway does not know, sent to the backend: schemas, signed calls, answers), and
//!    [`webhooks`] (what happens on the gateway, stored in the outbox and POSTed to the
//!    backend by one node: the recorder, the delivery loop).
//! 4. **The node** — [`node`]: the shared [`node::AppState`], each socket's
//!    [`node::session`] (with its notification delivery gate), connection [`node::limits`]
//!    and the event rate, token [`node::expiry`] deadlines, [`node::room_sizes`], and the
//!    [`node::activity`] feed that observers read.
//! 5. **Services** — [`service`]: the operations both fronts share (store, then emit), and
//!    [`service::delivery`]: notifications to this node's sockets, exactly once and in order,
//!    with the repair loop that reads from the database whatever a socket missed.
//! 6. **Fronts** — [`socket`] (the handshake middleware, the connect sequence, one module per
//!    event group; [`socket::reply`] answers with the ack envelope or the `error` event) and
//!    [`http`] (the HTTP API, its extractors, the request-level middleware, the access log).
//! 7. **Observers and assembly** — [`admin`] (the Socket.IO admin UI on `/admin`, fed by the
//!    activity feed) and [`app`] (assembles a node and stops it).

pub mod admin;
pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dto;
pub mod error;
pub mod http;
pub mod node;
pub mod outbound;
pub mod proxy;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod socket;
pub mod telemetry;
pub mod webhooks;

pub use app::{bind, serve};
pub use config::Config;
