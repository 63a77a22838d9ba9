//! Configuration: every variable of the contract, read once at start and validated.
//!
//! Values come from a lookup function rather than straight from the process environment,
//! so tests can build a [`Config`] from a map. `main` loads an optional `.env` from the
//! working directory first ([`load_dotenv`]); variables already in the environment win over
//! it, and a line of it that does not parse refuses the start.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

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
    /// A line of the `.env` file does not parse.
    #[error("{file}: line {line} does not parse: {message}")]
    DotEnv {
        /// The file, as given.
        file: String,
        /// Its 1-based line number.
        line: usize,
        /// What the parser found wrong.
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
    /// Presence and room events held in memory while the database does not take them, at
    /// most ([`WEBHOOK_QUEUE_MAX`]); more are dropped and counted.
    pub queue_max: usize,
}

/// How many presence and room events a node holds in memory while its database does not
/// take them (about 30 MB at most); more are dropped and counted.
pub const WEBHOOK_QUEUE_MAX: usize = 100_000;

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
    /// Size of the database pool (`DATABASE_MAX_CONNECTIONS`; default 10, and 4 for SQLite
    /// when unset).
    pub database_max_connections: Option<u32>,
    /// Apply pending migrations at start (`MIGRATE_ON_START`, default true); when false the
    /// start only checks that every migration is applied.
    pub migrate_on_start: bool,
    /// Redis for the scale-out adapter (`REDIS_URL`); `None` means one node, in memory.
    pub redis_url: Option<String>,
    /// PEM file of the CA certificates a `rediss://` server's certificate must chain to,
    /// instead of the system's (`REDIS_CA_FILE`).
    pub redis_ca_file: Option<String>,
    /// `/readyz` answers 503 while Redis is down (`READYZ_REQUIRE_REDIS`, default true as the
    /// contract says); false reports a Redis outage as degraded, with 200.
    pub readyz_require_redis: bool,
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
    /// Connections per user (`SOCKET_MAX_CONNECTIONS_PER_USER`, at least 1).
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
            database_max_connections: match get("DATABASE_MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(parse(&get, "DATABASE_MAX_CONNECTIONS", 10u32)?),
            },
            migrate_on_start: parse_bool(&get, "MIGRATE_ON_START", true)?,
            redis_url: get("REDIS_URL"),
            redis_ca_file: get("REDIS_CA_FILE"),
            readyz_require_redis: parse_bool(&get, "READYZ_REQUIRE_REDIS", true)?,
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
            cors_origins: cors_origins(get("CORS_ORIGINS"))?,
            shutdown_timeout: Duration::from_secs(parse(&get, "SHUTDOWN_TIMEOUT_SECS", 10)?),
            metrics_token: get("METRICS_TOKEN"),
            parser,
            log_json,
            demo_dir: existing_dir(&get, "DEMO_DIR")?,
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
            admin_ui_dir: existing_dir(&get, "ADMIN_UI_DIR")?,
            proxy: proxy_config(&get)?,
            webhooks: webhook_config(&get)?,
        };
        if let Some(ca) = &cfg.redis_ca_file {
            let tls = cfg
                .redis_url
                .as_deref()
                .is_some_and(|u| u.to_ascii_lowercase().starts_with("rediss://"));
            if !tls {
                return Err(invalid("REDIS_CA_FILE", "is for a TLS Redis: set REDIS_URL=rediss://…"));
            }
            if !Path::new(ca).is_file() {
                return Err(invalid("REDIS_CA_FILE", format!("`{ca}` is not an existing file")));
            }
        }
        if cfg.database_max_connections == Some(0) {
            return Err(invalid("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if cfg.max_connections_per_user == 0 {
            return Err(invalid(
                "SOCKET_MAX_CONNECTIONS_PER_USER",
                "must be at least 1 (0 is not \"unlimited\": set a large number instead)",
            ));
        }
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

    /// Every variable with the value this node runs with, defaults included, for
    /// `sio-gateway config`. Secrets are masked: `***` when set (passwords inside URLs too),
    /// and what happens instead when unset.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let set = |given: bool, unset: &str| if given { "***".to_string() } else { unset.to_string() };
        let secs = |d: Duration| d.as_secs().to_string();
        let proxy = self.proxy.as_ref();
        let hooks = self.webhooks.as_ref();
        vec![
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            (
                "CORS_ORIGINS",
                self.cors_origins.as_ref().map_or("*".into(), |o| o.join(",")),
            ),
            ("DATABASE_URL", mask_url(&self.database_url)),
            (
                "DATABASE_MAX_CONNECTIONS",
                self.database_max_connections.map_or_else(
                    || {
                        if sqlite_path(&self.database_url).is_some() {
                            "4".into()
                        } else {
                            "10".into()
                        }
                    },
                    |n| n.to_string(),
                ),
            ),
            ("MIGRATE_ON_START", self.migrate_on_start.to_string()),
            ("REDIS_URL", self.redis_url.as_deref().map(mask_url).unwrap_or_default()),
            ("REDIS_CA_FILE", opt(&self.redis_ca_file)),
            ("REDIS_PREFIX", self.redis_prefix.clone()),
            ("READYZ_REQUIRE_REDIS", self.readyz_require_redis.to_string()),
            ("SHUTDOWN_TIMEOUT_SECS", secs(self.shutdown_timeout)),
            (
                "JWT_SECRET",
                match self.jwt_key {
                    JwtKeySource::Secret(_) => "***".into(),
                    JwtKeySource::PublicKeyFile(_) => String::new(),
                    JwtKeySource::Generated => format!(
                        "(unset: generated into {})",
                        self.data_dir().join(crate::secrets::SECRET_FILE).display()
                    ),
                },
            ),
            (
                "JWT_PUBLIC_KEY_FILE",
                match &self.jwt_key {
                    JwtKeySource::PublicKeyFile(p) => p.display().to_string(),
                    _ => String::new(),
                },
            ),
            ("JWT_LEEWAY_SECS", self.jwt_leeway_secs.to_string()),
            ("JWT_ISSUER", opt(&self.jwt_issuer)),
            ("JWT_AUDIENCE", opt(&self.jwt_audience)),
            (
                "API_KEYS",
                if self.api_keys.is_empty() {
                    format!(
                        "(unset: generated into {})",
                        self.data_dir().join(crate::secrets::API_KEY_FILE).display()
                    )
                } else {
                    vec!["***"; self.api_keys.len()].join(",")
                },
            ),
            ("METRICS_TOKEN", set(self.metrics_token.is_some(), "")),
            ("ROOMS_REQUIRE_CLAIM", self.rooms_require_claim.to_string()),
            ("MAX_ROOMS_PER_SOCKET", self.max_rooms_per_socket.to_string()),
            ("ROOM_EVENTS_MAX_MEMBERS", self.room_events_max_members.to_string()),
            ("SOCKET_MAX_TOTAL_CONNECTIONS", self.max_total_connections.to_string()),
            (
                "SOCKET_MAX_CONNECTIONS_PER_USER",
                self.max_connections_per_user.to_string(),
            ),
            ("MAX_PAYLOAD_BYTES", self.max_payload_bytes.to_string()),
            ("EVENT_RATE_PER_SEC", self.event_rate_per_sec.to_string()),
            ("EVENT_BURST", self.event_burst.to_string()),
            ("IDLE_TIMEOUT_SECS", self.idle_timeout.map_or("0".into(), secs)),
            ("PROXY_URL", proxy.map(|p| mask_url(&p.url)).unwrap_or_default()),
            ("PROXY_SECRET", set(proxy.is_some(), "")),
            ("PROXY_EVENTS", proxy.map(|p| p.events.join(",")).unwrap_or_default()),
            (
                "PROXY_TIMEOUT_MS",
                proxy.map(|p| p.timeout.as_millis().to_string()).unwrap_or_default(),
            ),
            (
                "PROXY_MAX_IN_FLIGHT",
                proxy.map(|p| p.max_in_flight.to_string()).unwrap_or_default(),
            ),
            (
                "EVENT_SCHEMAS_DIR",
                proxy
                    .and_then(|p| p.schemas_dir.as_ref())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("WEBHOOK_URL", hooks.map(|h| mask_url(&h.url)).unwrap_or_default()),
            ("WEBHOOK_SECRET", set(hooks.is_some(), "")),
            ("WEBHOOK_EVENTS", hooks.map(|h| h.events.join(",")).unwrap_or_default()),
            (
                "PARSER",
                match self.parser {
                    ParserKind::Common => "default".into(),
                    ParserKind::Msgpack => "msgpack".into(),
                },
            ),
            ("LOG_FORMAT", if self.log_json { "json".into() } else { "text".into() }),
            (
                "ADMIN_USERNAME",
                self.admin.as_ref().map(|(u, _)| u.clone()).unwrap_or_default(),
            ),
            ("ADMIN_PASSWORD_HASH", set(self.admin.is_some(), "")),
            ("ADMIN_UI_DIR", opt(&self.admin_ui_dir)),
            ("DEMO_DIR", opt(&self.demo_dir)),
        ]
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

/// `CORS_ORIGINS`: `None` (any origin) when unset or when one entry is `*`; otherwise every
/// entry must be an origin as browsers send it, `scheme://host[:port]` without a path, or the
/// start is refused (an entry such as `https://app.example.com/` would never match).
fn cors_origins(v: Option<String>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(items) = list(v) else {
        return Ok(None);
    };
    for item in &items {
        if item != "*" && !is_origin(item) {
            return Err(invalid(
                "CORS_ORIGINS",
                format!("`{item}` is not an origin (scheme://host[:port], no path), nor *"),
            ));
        }
    }
    Ok((!items.iter().any(|x| x == "*")).then_some(items))
}

/// Whether `s` is `scheme://host[:port]`: a letter-led scheme, a host of letters, digits,
/// `-`, `.` (or a bracketed IPv6 address), an optional port, and nothing after.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let (host_ok, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, after)) => {
                let addr_ok = !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
                match after {
                    "" => (addr_ok, None),
                    _ => (addr_ok, Some(after.strip_prefix(':').unwrap_or("x"))),
                }
            }
            None => (false, None),
        },
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            let ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            (ok, port)
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    scheme_ok && host_ok && port_ok
}

/// A folder named in `name`, which must exist (a typo would otherwise serve 404s quietly).
fn existing_dir(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(dir) = get(name) else {
        return Ok(None);
    };
    if !Path::new(&dir).is_dir() {
        return Err(invalid(name, format!("`{dir}` is not an existing folder")));
    }
    Ok(Some(dir))
}

/// Loads `path` (the `.env` of the working directory) into the process environment, under
/// variables already set; no file is fine. A line that does not parse refuses the start,
/// naming the file and the line, instead of being skipped (a skipped `JWT_SECRET` line would
/// run on a generated secret).
pub fn load_dotenv(path: &Path) -> Result<(), ConfigError> {
    let content = match std::fs::read_to_string(path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ConfigError::DotEnv {
                file: path.display().to_string(),
                line: 0,
                message: format!("cannot read it: {e}"),
            });
        }
    };
    check_dotenv(&content).map_err(|(line, message)| ConfigError::DotEnv {
        file: path.display().to_string(),
        line,
        message,
    })?;
    dotenvy::from_path(path).map_err(|e| ConfigError::DotEnv {
        file: path.display().to_string(),
        line: 0,
        message: e.to_string(),
    })
}

/// Parses `.env` content; on the first line that does not parse, its 1-based number and why.
fn check_dotenv(content: &str) -> Result<(), (usize, String)> {
    for item in dotenvy::from_read_iter(content.as_bytes()) {
        match item {
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(text, at)) => {
                let first = text.lines().next().unwrap_or("").trim_end();
                let line = content.lines().position(|l| l.trim_end() == first).map_or(0, |i| i + 1);
                return Err((line, format!("`{}` (at character {})", first, at + 1)));
            }
            Err(e) => return Err((0, e.to_string())),
        }
    }
    Ok(())
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
    Ok(Some(WebhookConfig {
        url,
        secret,
        events,
        queue_max: WEBHOOK_QUEUE_MAX,
    }))
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

    #[test]
    fn cors_entries_must_be_origins() {
        for good in [
            "https://app.example.com",
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
            "https://a.example, https://b.example",
        ] {
            assert!(cfg(&[("CORS_ORIGINS", good)]).unwrap().cors_origins.is_some(), "{good}");
        }
        assert!(cfg(&[("CORS_ORIGINS", "*")]).unwrap().cors_origins.is_none());
        assert!(
            cfg(&[("CORS_ORIGINS", "https://a.example,*")])
                .unwrap()
                .cors_origins
                .is_none()
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://user@app.example.com",
            "https://",
            "https://a.example?x=1",
            "https://a.example, b.example",
            "*.example.com",
        ] {
            let err = cfg(&[("CORS_ORIGINS", bad)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with("CORS_ORIGINS"), "{bad}: {err}");
        }
    }

    #[test]
    fn zero_connections_per_user_is_refused() {
        let err = cfg(&[("SOCKET_MAX_CONNECTIONS_PER_USER", "0")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("SOCKET_MAX_CONNECTIONS_PER_USER"), "{err}");
        assert_eq!(
            cfg(&[("SOCKET_MAX_CONNECTIONS_PER_USER", "1")])
                .unwrap()
                .max_connections_per_user,
            1
        );
    }

    #[test]
    fn demo_and_admin_ui_folders_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().to_str().unwrap();
        let missing = dir.path().join("nope");
        let missing = missing.to_str().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        for name in ["DEMO_DIR", "ADMIN_UI_DIR"] {
            assert!(cfg(&[(name, here)]).is_ok(), "{name}");
            for bad in [missing, file.to_str().unwrap()] {
                let err = cfg(&[(name, bad)]).err().unwrap().to_string();
                assert!(err.starts_with(name) && err.contains(bad), "{err}");
            }
        }
        assert_eq!(cfg(&[("DEMO_DIR", here)]).unwrap().demo_dir.as_deref(), Some(here));
    }

    #[test]
    fn redis_ca_file_needs_rediss_and_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ca = ca.to_str().unwrap();
        let ok = cfg(&[("REDIS_URL", "rediss://cache:6380"), ("REDIS_CA_FILE", ca)]).unwrap();
        assert_eq!(ok.redis_ca_file.as_deref(), Some(ca));
        for env in [
            vec![("REDIS_CA_FILE", ca)],
            vec![("REDIS_URL", "redis://cache:6379"), ("REDIS_CA_FILE", ca)],
            vec![
                ("REDIS_URL", "rediss://cache:6380"),
                ("REDIS_CA_FILE", "/no/such/ca.pem"),
            ],
        ] {
            let err = cfg(&env).err().unwrap().to_string();
            assert!(err.starts_with("REDIS_CA_FILE"), "{err}");
        }
    }

    #[test]
    fn database_pool_size_is_checked() {
        assert_eq!(cfg(&[]).unwrap().database_max_connections, None);
        assert_eq!(
            cfg(&[("DATABASE_MAX_CONNECTIONS", "25")])
                .unwrap()
                .database_max_connections,
            Some(25)
        );
        for bad in ["0", "ten", "-1"] {
            let err = cfg(&[("DATABASE_MAX_CONNECTIONS", bad)]).err().unwrap().to_string();
            assert!(err.starts_with("DATABASE_MAX_CONNECTIONS"), "{bad}: {err}");
        }
    }

    #[test]
    fn migrate_on_start_and_readyz_require_redis_are_booleans() {
        let c = cfg(&[]).unwrap();
        assert!(c.migrate_on_start && c.readyz_require_redis);
        let c = cfg(&[("MIGRATE_ON_START", "false"), ("READYZ_REQUIRE_REDIS", "false")]).unwrap();
        assert!(!c.migrate_on_start && !c.readyz_require_redis);
        for name in ["MIGRATE_ON_START", "READYZ_REQUIRE_REDIS"] {
            let err = cfg(&[(name, "maybe")]).err().unwrap().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn a_dotenv_line_that_does_not_parse_is_named() {
        assert!(check_dotenv("# comment\nPORT=3000\n\nJWT_SECRET='abc def'\n").is_ok());
        let (line, why) = check_dotenv("# comment\nPORT=3000\nJWT_SECRET abc\nHOST=x\n").unwrap_err();
        assert_eq!(line, 3, "{why}");
        assert!(why.contains("JWT_SECRET abc"), "{why}");
        let (line, _) = check_dotenv("A=1\nB='unterminated\n").unwrap_err();
        assert_eq!(line, 2);
    }

    #[test]
    fn load_dotenv_refuses_naming_the_file_and_line_and_accepts_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert!(load_dotenv(&path).is_ok());
        std::fs::write(&path, "PORT=1\n  oops\n").unwrap();
        let err = load_dotenv(&path).unwrap_err().to_string();
        assert!(err.contains(".env") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn effective_configuration_masks_every_secret() {
        let c = cfg(&[
            ("JWT_SECRET", &"s".repeat(40)),
            ("API_KEYS", "key-one,key-two"),
            ("DATABASE_URL", "postgres://gw:dbpass@db/gw"),
            ("REDIS_URL", "redis://:redispass@cache:6379"),
            ("PROXY_URL", "http://backend/events"),
            ("PROXY_SECRET", &"p".repeat(32)),
            ("WEBHOOK_URL", "http://backend/hooks"),
            ("WEBHOOK_SECRET", &"w".repeat(32)),
            ("METRICS_TOKEN", "metrics-token"),
            ("DATABASE_MAX_CONNECTIONS", "7"),
        ])
        .unwrap();
        let shown: String = c.effective().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        for secret in [
            "ssss",
            "key-one",
            "dbpass",
            "redispass",
            "pppp",
            "wwww",
            "metrics-token",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        for line in [
            "JWT_SECRET=***",
            "API_KEYS=***,***",
            "DATABASE_URL=postgres://gw:***@db/gw",
            "DATABASE_MAX_CONNECTIONS=7",
            "PROXY_SECRET=***",
            "PORT=3000",
        ] {
            assert!(shown.contains(line), "{line} missing:\n{shown}");
        }
    }
}
