//! Configuration: every variable of the contract, read once at start and validated.
//!
//! Values come from a lookup function rather than straight from the process environment,
//! so tests can build a [`Config`] from a map. `main` loads an optional `.env` first;
//! variables already in the environment win over it.

use std::{path::PathBuf, time::Duration};

/// Why the configuration was refused; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value of the wrong form.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// `name` holds a value of the wrong form, for `message`.
    pub fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            message: message.into(),
        }
    }
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(name, message)
}

/// Where token verification keys come from.
#[derive(Clone)]
pub enum JwtKeySource {
    /// An HMAC secret given in `JWT_SECRET` (at least 32 bytes).
    Secret(Vec<u8>),
    /// A PEM public key file given in `JWT_PUBLIC_KEY_FILE`.
    PublicKeyFile(PathBuf),
    /// Neither is set: a secret is generated into (or read from) `sio-gateway.secret`.
    Generated,
}

impl std::fmt::Debug for JwtKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::PublicKeyFile(p) => f.debug_tuple("PublicKeyFile").field(p).finish(),
            Self::Generated => f.write_str("Generated"),
        }
    }
}

/// The wire encoding of Socket.IO packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParserKind {
    /// The default JSON parser.
    Common,
    /// The msgpack parser (`PARSER=msgpack`).
    Msgpack,
}

/// The event proxy (contract section 10.2), on when `PROXY_URL` is set.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Where proxied events are POSTed (`PROXY_URL`, `http://` or `https://`).
    pub url: String,
    /// Signs each call (`PROXY_SECRET`, at least 32 bytes).
    pub secret: Vec<u8>,
    /// Which events go to the backend (`PROXY_EVENTS`; a trailing `*` matches any suffix).
    pub events: Vec<String>,
    /// Longest wait for the backend's answer (`PROXY_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Most calls waiting on this node at once (`PROXY_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Folder of `<event>.json` JSON Schemas (`EVENT_SCHEMAS_DIR`).
    pub schemas_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &mask_url(&self.url))
            .field("secret", &"***")
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("schemas_dir", &self.schemas_dir)
            .finish()
    }
}

/// The webhook types of contract section 10.3, in the order the README lists them.
pub const WEBHOOK_TYPES: [&str; 6] = [
    "user.online",
    "user.offline",
    "room.joined",
    "room.left",
    "message.created",
    "notifications.read",
];

/// Webhooks (contract section 10.3), on when `WEBHOOK_URL` is set.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where events are POSTed (`WEBHOOK_URL`, `http://` or `https://`).
    pub url: String,
    /// Signs each call (`WEBHOOK_SECRET`, at least 32 bytes).
    pub secret: Vec<u8>,
    /// The types sent (`WEBHOOK_EVENTS`; default all of [`WEBHOOK_TYPES`]).
    pub events: Vec<&'static str>,
}

impl WebhookConfig {
    /// Whether events of `kind` are sent.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.contains(&kind)
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &mask_url(&self.url))
            .field("secret", &"***")
            .field("events", &self.events)
            .finish()
    }
}

/// The whole configuration of one gateway node.
#[derive(Clone)]
pub struct Config {
    /// Interface to bind (`HOST`).
    pub host: String,
    /// Port serving Socket.IO and HTTP (`PORT`).
    pub port: u16,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`).
    pub database_url: String,
    /// Redis for the scale-out adapter (`REDIS_URL`); `None` means one node, in memory.
    pub redis_url: Option<String>,
    /// Prefix of every Redis channel and key, to share one Redis between deployments
    /// (`REDIS_PREFIX`).
    pub redis_prefix: String,
    /// How tokens are verified.
    pub jwt_key: JwtKeySource,
    /// Clock skew allowed on `exp` and `nbf` (`JWT_LEEWAY_SECS`).
    pub jwt_leeway_secs: u64,
    /// Required `iss`, when set (`JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// Required `aud`, when set (`JWT_AUDIENCE`).
    pub jwt_audience: Option<String>,
    /// Service keys for the HTTP API (`API_KEYS`); empty means generate one.
    pub api_keys: Vec<String>,
    /// Every join needs a matching `rooms` claim (`ROOMS_REQUIRE_CLAIM`).
    pub rooms_require_claim: bool,
    /// Client rooms one socket may be in (`MAX_ROOMS_PER_SOCKET`).
    pub max_rooms_per_socket: usize,
    /// Connections per node (`SOCKET_MAX_TOTAL_CONNECTIONS`).
    pub max_total_connections: usize,
    /// Connections per user (`SOCKET_MAX_CONNECTIONS_PER_USER`).
    pub max_connections_per_user: usize,
    /// Largest Socket.IO packet or HTTP body (`MAX_PAYLOAD_BYTES`).
    pub max_payload_bytes: usize,
    /// Sustained events per second per socket (`EVENT_RATE_PER_SEC`).
    pub event_rate_per_sec: u32,
    /// Burst of events per socket (`EVENT_BURST`).
    pub event_burst: u32,
    /// Disconnect sockets silent for this long; `None` is off (`IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Option<Duration>,
    /// Largest room that still gets `userJoined`/`userLeft`; 0 is off (`ROOM_EVENTS_MAX_MEMBERS`).
    pub room_events_max_members: usize,
    /// Allowed CORS origins; `None` is `*` (`CORS_ORIGINS`).
    pub cors_origins: Option<Vec<String>>,
    /// How long a graceful stop may take (`SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
    /// Bearer token guarding `/metrics`, when set (`METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// Socket.IO packet encoding (`PARSER`).
    pub parser: ParserKind,
    /// `json` for one JSON object per log line (`LOG_FORMAT`).
    pub log_json: bool,
    /// Folder of the built browser demo, served at `/demo` when set (`DEMO_DIR`;
    /// development only: it also signs tokens for any user name).
    pub demo_dir: Option<String>,
    /// Admin UI login and bcrypt hash (`ADMIN_USERNAME`, `ADMIN_PASSWORD_HASH`); both set
    /// turn the `/admin` namespace on.
    pub admin: Option<(String, String)>,
    /// Folder of the admin UI's built files, served at `/admin-ui/` when set (`ADMIN_UI_DIR`).
    pub admin_ui_dir: Option<String>,
    /// The event proxy, when `PROXY_URL` is set.
    pub proxy: Option<ProxyConfig>,
    /// Webhooks, when `WEBHOOK_URL` is set.
    pub webhooks: Option<WebhookConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets are masked: only their presence is shown.
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &mask_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(mask_url))
            .field("jwt_key", &self.jwt_key)
            .field("api_keys", &format!("{} key(s)", self.api_keys.len()))
            .field("max_total_connections", &self.max_total_connections)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("proxy", &self.proxy)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// Hides a password in a connection URL (`postgres://u:***@host/db`).
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Smallest accepted HMAC secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, which returns a variable's value if set.
    /// Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let jwt_key = match (get("JWT_SECRET"), get("JWT_PUBLIC_KEY_FILE")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "JWT_SECRET",
                    "set either JWT_SECRET or JWT_PUBLIC_KEY_FILE, not both",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(invalid(
                        "JWT_SECRET",
                        format!(
                            "must be at least {MIN_SECRET_BYTES} bytes (got {}); generate one with `openssl rand -hex 32`",
                            secret.len()
                        ),
                    ));
                }
                JwtKeySource::Secret(secret.into_bytes())
            }
            (None, Some(path)) => JwtKeySource::PublicKeyFile(path.into()),
            (None, None) => JwtKeySource::Generated,
        };
        let idle = parse::<u64>(&get, "IDLE_TIMEOUT_SECS", 0)?;
        let parser = match get("PARSER").as_deref() {
            None | Some("default") | Some("json") => ParserKind::Common,
            Some("msgpack") => ParserKind::Msgpack,
            Some(other) => {
                return Err(invalid(
                    "PARSER",
                    format!("expected `default` or `msgpack`, got `{other}`"),
                ));
            }
        };
        let log_json = match get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => false,
            Some("json") => true,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("expected `text` or `json`, got `{other}`"),
                ));
            }
        };
        let cfg = Config {
            host: get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port: parse(&get, "PORT", 3000)?,
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://sio-gateway.db".into()),
            redis_url: get("REDIS_URL"),
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| "sio-gateway".into()),
            jwt_key,
            jwt_leeway_secs: parse(&get, "JWT_LEEWAY_SECS", 5)?,
            jwt_issuer: get("JWT_ISSUER"),
            jwt_audience: get("JWT_AUDIENCE"),
            api_keys: list(get("API_KEYS")).unwrap_or_default(),
            rooms_require_claim: parse_bool(&get, "ROOMS_REQUIRE_CLAIM", false)?,
            max_rooms_per_socket: parse(&get, "MAX_ROOMS_PER_SOCKET", 100)?,
            max_total_connections: parse(&get, "SOCKET_MAX_TOTAL_CONNECTIONS", 100_000)?,
            max_connections_per_user: parse(&get, "SOCKET_MAX_CONNECTIONS_PER_USER", 10)?,
            max_payload_bytes: parse(&get, "MAX_PAYLOAD_BYTES", 65_536)?,
            event_rate_per_sec: parse(&get, "EVENT_RATE_PER_SEC", 20)?,
            event_burst: parse(&get, "EVENT_BURST", 40)?,
            idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
            room_events_max_members: parse(&get, "ROOM_EVENTS_MAX_MEMBERS", 100)?,
            cors_origins: list(get("CORS_ORIGINS")).filter(|o| !o.iter().any(|x| x == "*")),
            shutdown_timeout: Duration::from_secs(parse(&get, "SHUTDOWN_TIMEOUT_SECS", 10)?),
            metrics_token: get("METRICS_TOKEN"),
            parser,
            log_json,
            demo_dir: get("DEMO_DIR"),
            admin: match (get("ADMIN_USERNAME"), get("ADMIN_PASSWORD_HASH")) {
                (Some(user), Some(hash)) => {
                    if !(hash.starts_with("$2") && hash.len() == 60) {
                        return Err(invalid(
                            "ADMIN_PASSWORD_HASH",
                            "must be a bcrypt hash ($2b$…, 60 characters)",
                        ));
                    }
                    Some((user, hash))
                }
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        "ADMIN_USERNAME",
                        "set both ADMIN_USERNAME and ADMIN_PASSWORD_HASH, or neither",
                    ));
                }
            },
            admin_ui_dir: get("ADMIN_UI_DIR"),
            proxy: proxy_config(&get)?,
            webhooks: webhook_config(&get)?,
        };
        if cfg.max_payload_bytes < 1024 {
            return Err(invalid("MAX_PAYLOAD_BYTES", "must be at least 1024"));
        }
        if cfg.event_rate_per_sec == 0 || cfg.event_burst == 0 {
            return Err(invalid(
                "EVENT_RATE_PER_SEC",
                "EVENT_RATE_PER_SEC and EVENT_BURST must be at least 1",
            ));
        }
        Ok(cfg)
    }

    /// The folder that holds the SQLite database, where generated secrets are kept too.
    /// For PostgreSQL it is the working directory.
    pub fn data_dir(&self) -> PathBuf {
        sqlite_path(&self.database_url)
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// `PROXY_*` and `EVENT_SCHEMAS_DIR`; `None` without `PROXY_URL`.
fn proxy_config(get: &impl Fn(&str) -> Option<String>) -> Result<Option<ProxyConfig>, ConfigError> {
    let Some(url) = backend_url(get, "PROXY_URL")? else {
        return Ok(None);
    };
    let secret = backend_secret(get, "PROXY_SECRET", "PROXY_URL")?;
    let timeout_ms = parse::<u64>(get, "PROXY_TIMEOUT_MS", 5000)?;
    let max_in_flight = parse::<usize>(get, "PROXY_MAX_IN_FLIGHT", 1000)?;
    if timeout_ms == 0 {
        return Err(invalid("PROXY_TIMEOUT_MS", "must be at least 1"));
    }
    if max_in_flight == 0 {
        return Err(invalid("PROXY_MAX_IN_FLIGHT", "must be at least 1"));
    }
    Ok(Some(ProxyConfig {
        url,
        secret,
        events: list(get("PROXY_EVENTS")).unwrap_or_else(|| vec!["*".into()]),
        timeout: Duration::from_millis(timeout_ms),
        max_in_flight,
        schemas_dir: get("EVENT_SCHEMAS_DIR").map(PathBuf::from),
    }))
}

/// `WEBHOOK_*`; `None` without `WEBHOOK_URL`.
fn webhook_config(get: &impl Fn(&str) -> Option<String>) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(url) = backend_url(get, "WEBHOOK_URL")? else {
        return Ok(None);
    };
    let secret = backend_secret(get, "WEBHOOK_SECRET", "WEBHOOK_URL")?;
    let events = match list(get("WEBHOOK_EVENTS")) {
        None => WEBHOOK_TYPES.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                WEBHOOK_TYPES
                    .iter()
                    .find(|t| **t == n.as_str())
                    .copied()
                    .ok_or_else(|| {
                        invalid(
                            "WEBHOOK_EVENTS",
                            format!("`{n}` is not one of {}", WEBHOOK_TYPES.join(", ")),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(WebhookConfig { url, secret, events }))
}

/// A backend's `http://` or `https://` URL in `name`, if set.
fn backend_url(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(url) = get(name) else {
        return Ok(None);
    };
    let url = url.trim().to_string();
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or_default();
    if host.is_empty() || host.starts_with('/') {
        return Err(invalid(
            name,
            format!("expected an http:// or https:// URL, got `{url}`"),
        ));
    }
    Ok(Some(url))
}

/// The shared secret in `name`, required (at least 32 bytes) because `needed_by` is set.
fn backend_secret(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    needed_by: &str,
) -> Result<Vec<u8>, ConfigError> {
    let secret = get(name).ok_or_else(|| {
        invalid(
            name,
            format!("is required with {needed_by} (at least {MIN_SECRET_BYTES} bytes; `openssl rand -hex 32`)"),
        )
    })?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            name,
            format!("must be at least {MIN_SECRET_BYTES} bytes (got {})", secret.len()),
        ));
    }
    Ok(secret.into_bytes())
}

/// The file path inside a `sqlite://` URL, without query parameters.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(name, format!("`{v}` is not a valid number"))),
    }
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(invalid(name, format!("`{v}` is not true or false"))),
    }
}

fn list(v: Option<String>) -> Option<Vec<String>> {
    let items: Vec<String> = v?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.database_url, "sqlite://sio-gateway.db");
        assert_eq!(c.jwt_leeway_secs, 5);
        assert_eq!(c.max_rooms_per_socket, 100);
        assert_eq!(c.max_total_connections, 100_000);
        assert_eq!(c.max_connections_per_user, 10);
        assert_eq!(c.max_payload_bytes, 65_536);
        assert_eq!((c.event_rate_per_sec, c.event_burst), (20, 40));
        assert!(c.idle_timeout.is_none());
        assert_eq!(c.room_events_max_members, 100);
        assert!(c.cors_origins.is_none());
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert!(matches!(c.jwt_key, JwtKeySource::Generated));
    }

    #[test]
    fn short_secret_is_refused_with_its_name() {
        let err = cfg(&[("JWT_SECRET", "too-short")]).err().unwrap().to_string();
        assert!(err.contains("JWT_SECRET") && err.contains("32"), "{err}");
        assert!(cfg(&[("JWT_SECRET", &"x".repeat(32))]).is_ok());
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let err = cfg(&[("PORT", "eighty")]).err().unwrap().to_string();
        assert!(err.starts_with("PORT"), "{err}");
    }

    #[test]
    fn data_dir_follows_the_sqlite_file() {
        let c = cfg(&[("DATABASE_URL", "sqlite:///var/lib/gw/x.db?mode=rwc")]).unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/var/lib/gw"));
        assert_eq!(cfg(&[]).unwrap().data_dir(), PathBuf::from("."));
    }

    #[test]
    fn the_proxy_needs_a_long_secret_and_an_http_url() {
        let url = ("PROXY_URL", "http://127.0.0.1:9/events");
        assert!(cfg(&[]).unwrap().proxy.is_none());
        let err = cfg(&[url]).err().unwrap().to_string();
        assert!(err.starts_with("PROXY_SECRET"), "{err}");
        let err = cfg(&[url, ("PROXY_SECRET", "short")]).err().unwrap().to_string();
        assert!(err.starts_with("PROXY_SECRET") && err.contains("32"), "{err}");
        let long = "p".repeat(32);
        let err = cfg(&[("PROXY_URL", "ftp://x"), ("PROXY_SECRET", &long)])
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("PROXY_URL"), "{err}");
        let p = cfg(&[url, ("PROXY_SECRET", &long)]).unwrap().proxy.unwrap();
        assert_eq!(p.events, vec!["*"]);
        assert_eq!((p.timeout, p.max_in_flight), (Duration::from_secs(5), 1000));
        assert!(!format!("{p:?}").contains("pppp"));
    }

    #[test]
    fn webhooks_need_a_long_secret_and_known_types() {
        let url = ("WEBHOOK_URL", "http://127.0.0.1:9/hooks");
        let long = "w".repeat(32);
        assert!(cfg(&[url]).err().unwrap().to_string().starts_with("WEBHOOK_SECRET"));
        let w = cfg(&[url, ("WEBHOOK_SECRET", &long)]).unwrap().webhooks.unwrap();
        assert_eq!(w.events, WEBHOOK_TYPES.to_vec());
        let w = cfg(&[
            url,
            ("WEBHOOK_SECRET", &long),
            ("WEBHOOK_EVENTS", "user.online, room.left"),
        ])
        .unwrap()
        .webhooks
        .unwrap();
        assert!(w.wants("room.left") && !w.wants("message.created"));
        let err = cfg(&[url, ("WEBHOOK_SECRET", &long), ("WEBHOOK_EVENTS", "user.login")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("WEBHOOK_EVENTS") && err.contains("user.login"), "{err}");
    }

    #[test]
    fn debug_masks_secrets() {
        let c = cfg(&[
            ("JWT_SECRET", &"s".repeat(40)),
            ("API_KEYS", "k1,k2"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("ssss") && !shown.contains("k1") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
