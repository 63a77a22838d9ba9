//! # sio-gateway
//!
//! A Socket.IO-compatible real-time gateway: clients connect with the ordinary
//! `socket.io-client`, authenticate with a JWT in the handshake, land in the room
//! `user:<sub>`, join rooms, chat with acknowledgements, and receive notifications that
//! backends post over HTTP (stored first, then pushed to every tab of the user).
//!
//! # Layout
//!
//! Read in this order to follow a connection from the handshake to an acknowledgement:
//!
//! - [`config`]: every environment variable of the contract, validated at start.
//! - [`app`]: assembles a node (keys, database, Socket.IO layer, HTTP routes) and stops it.
//! - [`socket`]: the handshake middleware, the connect sequence, and one module per event
//!   group; [`socket::reply`] answers with the ack envelope or the `error` event.
//! - [`auth`]: token sources, verification and signing.
//! - [`session`]: per-socket state, including the notification delivery gate.
//! - [`dto`]: request DTOs and their validation, shared by both transports.
//! - [`service`]: operations shared by socket events and HTTP (store, then emit).
//! - [`delivery`]: notifications to this node's sockets, exactly once and in order, with the
//!   repair loop that reads from the database whatever a socket missed.
//! - [`db`]: SQLite/PostgreSQL storage, one module per table.
//! - [`http`]: the HTTP API and its extractors.
//! - [`error`]: the one error enum and its two wire forms.
//! - [`limits`]: connection counters and the per-socket event rate.
//! - [`expiry`], [`room_sizes`], [`handshake_copy`]: bookkeeping kept cheap on purpose — token
//!   deadlines in order, per-room socket counts, handshake requests copied out of hyper's
//!   read buffer (see BENCHMARKS.md for what each one saves).
//! - [`cluster`]: several nodes over Redis (adapter driver, notification fan-out, members,
//!   per-user limit).
//! - [`admin`]: the server side of the Socket.IO admin UI on `/admin`.
//! - [`telemetry`], [`secrets`], [`shutdown`], [`cli`]: logs and metrics, generated secrets,
//!   stop signals, the command line.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dto;
pub mod error;
pub mod http;
pub mod node;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod socket;
pub mod telemetry;

pub use app::{bind, serve};
pub use config::Config;
