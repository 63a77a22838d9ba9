//! What both benchmark peers share: configuration from the environment, HS256 token
//! verification, and the listening socket.

use std::{fmt, net::SocketAddr};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel queues before `accept` (the gateway uses the same).
pub const LISTEN_BACKLOG: u32 = 1024;

/// `PORT`, `JWT_SECRET`, `API_KEYS`.
pub struct Config {
    pub port: u16,
    pub secret: String,
    pub api_keys: Vec<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let port = match std::env::var("PORT") {
            Ok(p) => p.parse().map_err(|_| format!("PORT is not a port number: {p}"))?,
            Err(_) => 3000,
        };
        let secret = std::env::var("JWT_SECRET").unwrap_or_default();
        if secret.is_empty() {
            return Err("JWT_SECRET is required".into());
        }
        let api_keys = std::env::var("API_KEYS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect();
        Ok(Config { port, secret, api_keys })
    }
}

/// Binds `127.0.0.1:port` with a listen backlog of [`LISTEN_BACKLOG`].
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Why a handshake token was refused; `Display` is the contract's `connect_error` message.
#[derive(Debug)]
pub enum TokenError {
    Missing,
    Invalid,
    Expired,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Missing => "missing_token",
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "token_expired",
        })
    }
}

impl std::error::Error for TokenError {}

/// Checks HS256 tokens (`exp` required, `nbf` honoured, 5 s leeway) and returns their `sub`.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Verifier {
    pub fn new(secret: &str) -> Verifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        Verifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The user id of a token; an empty token counts as missing.
    pub fn verify(&self, token: Option<&str>) -> Result<String, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        if valid_user_id(&data.claims.sub) {
            Ok(data.claims.sub)
        } else {
            Err(TokenError::Invalid)
        }
    }
}

/// A user id: 1 to 128 characters from `[A-Za-z0-9_.:@-]`.
pub fn valid_user_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

/// A client room id: 1 to 128 characters from `[A-Za-z0-9_.:-]`.
pub fn valid_room_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}
