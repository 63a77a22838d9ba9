//! Tokens: where the handshake finds one, how it is verified, and how `sio-gateway token`
//! signs one.
//!
//! Verification follows the contract's section 2: the algorithm family is fixed by the
//! configured key (an HMAC secret, or an RSA, EC or Ed25519 public key), so `alg: none` and
//! algorithm confusion fail before any signature check. `exp` is required, `nbf` is honoured,
//! and the leeway, issuer and audience come from the configuration.

use crate::clock::unix_secs as now_secs;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::config::{Config, JwtKeySource};

/// Why a handshake or a refresh was refused. `Display` is the wire code of `connect_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in any of the three sources.
    #[error("missing_token")]
    Missing,
    /// A token that does not verify, or whose claims break the rules.
    #[error("invalid_token")]
    Invalid,
    /// A token past `exp` plus the leeway.
    #[error("token_expired")]
    Expired,
}

/// The claims the gateway reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Room patterns this token may join; a trailing `*` matches any suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// Issued at, when the token says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer; set by `sio-gateway token` when `JWT_ISSUER` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience; set by `sio-gateway token` when `JWT_AUDIENCE` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Verifies tokens with the configured key and rules.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// Signs development tokens with the HMAC secret (`sio-gateway token`), with the configured
/// issuer and audience so the gateway accepts its own tokens.
pub struct Signer {
    key: EncodingKey,
    iss: Option<String>,
    aud: Option<String>,
}

/// The longest accepted user id.
pub const MAX_SUB_CHARS: usize = 128;

/// Whether `sub` is a valid user id: 1–128 characters from `[A-Za-z0-9_.:@-]`.
pub fn valid_user_id(sub: &str) -> bool {
    !sub.is_empty()
        && sub.len() <= MAX_SUB_CHARS
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

impl Verifier {
    /// Builds a verifier for an HMAC secret.
    pub fn hmac(secret: &[u8], cfg: &Config) -> Self {
        Self::with(
            DecodingKey::from_secret(secret),
            &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            cfg,
        )
    }

    /// Builds a verifier for a PEM public key; the algorithms follow the key's family.
    pub fn public_key(pem: &[u8], cfg: &Config) -> Result<Self, String> {
        use Algorithm::*;
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with(key, &[RS256, RS384, RS512, PS256, PS384, PS512], cfg));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            // The curve decides which of the two verifies; the other fails the signature check.
            return Ok(Self::with(key, &[ES256, ES384], cfg));
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self::with(key, &[EdDSA], cfg));
        }
        Err("JWT_PUBLIC_KEY_FILE: not a PEM RSA, EC (P-256/P-384) or Ed25519 public key".into())
    }

    fn with(key: DecodingKey, algs: &[Algorithm], cfg: &Config) -> Self {
        let mut validation = Validation::new(algs[0]);
        validation.algorithms = algs.to_vec();
        validation.leeway = cfg.jwt_leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // When configured, `iss` and `aud` must be present, not merely right if present.
        let mut required = vec!["exp", "sub"];
        match &cfg.jwt_issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &cfg.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }

    /// Verifies a token and its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        let claims = data.claims;
        if !valid_user_id(&claims.sub) {
            return Err(AuthError::Invalid);
        }
        Ok(claims)
    }

    /// The leeway applied to `exp`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.validation.leeway
    }
}

impl Signer {
    /// A signer for the HMAC secret.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            iss: None,
            aud: None,
        }
    }

    /// Adds the `iss` and `aud` claims the configuration requires.
    pub fn for_config(mut self, cfg: &Config) -> Self {
        self.iss = cfg.jwt_issuer.clone();
        self.aud = cfg.jwt_audience.clone();
        self
    }

    /// Signs an HS256 token for `sub`, valid for `ttl_secs`, with an optional `rooms` claim.
    pub fn sign(&self, sub: &str, ttl_secs: u64, rooms: Option<Vec<String>>) -> Result<String, String> {
        if !valid_user_id(sub) {
            return Err(format!(
                "--sub must be 1-{MAX_SUB_CHARS} characters from [A-Za-z0-9_.:@-]"
            ));
        }
        let now = now_secs();
        let claims = Claims {
            sub: sub.to_string(),
            exp: now + ttl_secs,
            rooms,
            iat: Some(now),
            iss: self.iss.clone(),
            aud: self.aud.clone().map(serde_json::Value::String),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// Parses a duration such as `90s`, `15m`, `1h` or `7d` into seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 1h or 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

/// Whether a room name matches one of the `rooms` claim patterns (`chat-*` matches `chat-1`).
pub fn room_allowed(patterns: &[String], room: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => p == room,
    })
}

/// The token of a handshake, taken from the first source present: `auth.token`, then the
/// `Authorization: Bearer` header, then the `token` query parameter. Empty values count as
/// absent; a present source is never skipped for a later one, even if its token is bad.
pub fn handshake_token(
    auth: Option<&serde_json::Value>,
    authorization: Option<&[u8]>,
    query: Option<&str>,
) -> Result<String, AuthError> {
    if let Some(v) = auth.and_then(|a| a.get("token")) {
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if s.is_empty() => {}
            serde_json::Value::String(s) => return Ok(s.clone()),
            _ => return Err(AuthError::Invalid),
        }
    }
    // Only a Bearer header is a token source; another scheme (a proxy's Basic auth, say) is
    // not ours and counts as absent.
    if let Some(h) = authorization.filter(|h| !h.is_empty()) {
        let h = std::str::from_utf8(h).map_err(|_| AuthError::Invalid)?;
        if let Some(token) = bearer_token(h) {
            return Ok(token.to_string());
        }
    }
    if let Some(q) = query
        && let Some((_, v)) = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "token")
        && !v.is_empty()
    {
        return Ok(v.into_owned());
    }
    Err(AuthError::Missing)
}

/// The token of an `Authorization` value `Bearer <token>` (the scheme in any case, spaces
/// around trimmed); `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Builds the verifier for the configuration, given the generated secret when there is one.
pub fn verifier_for(cfg: &Config, generated_secret: Option<&[u8]>) -> Result<Verifier, String> {
    match &cfg.jwt_key {
        JwtKeySource::Secret(s) => Ok(Verifier::hmac(s, cfg)),
        JwtKeySource::PublicKeyFile(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("JWT_PUBLIC_KEY_FILE {}: {e}", path.display()))?;
            Verifier::public_key(&pem, cfg)
        }
        JwtKeySource::Generated => generated_secret
            .map(|s| Verifier::hmac(s, cfg))
            .ok_or_else(|| "no JWT secret available".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let map: std::collections::HashMap<String, String> =
            extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn accepts_hs256_384_512() {
        let v = Verifier::hmac(SECRET, &cfg(&[]));
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let t = sign(json!({"sub": "alice", "exp": now_secs() + 60}), alg, SECRET);
            assert_eq!(v.verify(&t).unwrap().sub, "alice");
        }
    }

    #[test]
    fn refuses_wrong_secret_none_and_missing_exp() {
        let v = Verifier::hmac(SECRET, &cfg(&[]));
        let other = sign(
            json!({"sub": "a", "exp": now_secs() + 60}),
            Algorithm::HS256,
            b"another-secret-another-secret-xx",
        );
        assert_eq!(v.verify(&other), Err(AuthError::Invalid));
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&json!({"sub": "a", "exp": now_secs() + 60}))
        );
        assert_eq!(v.verify(&none), Err(AuthError::Invalid));
        let no_exp = sign(json!({"sub": "a"}), Algorithm::HS256, SECRET);
        assert_eq!(v.verify(&no_exp), Err(AuthError::Invalid));
        assert_eq!(v.verify("not.a.token"), Err(AuthError::Invalid));
    }

    #[test]
    fn expiry_leeway_and_nbf() {
        let v = Verifier::hmac(SECRET, &cfg(&[]));
        let expired = sign(json!({"sub": "a", "exp": now_secs() - 30}), Algorithm::HS256, SECRET);
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
        let within_leeway = sign(json!({"sub": "a", "exp": now_secs() - 2}), Algorithm::HS256, SECRET);
        assert!(v.verify(&within_leeway).is_ok());
        let future_nbf = sign(
            json!({"sub": "a", "exp": now_secs() + 600, "nbf": now_secs() + 300}),
            Algorithm::HS256,
            SECRET,
        );
        assert_eq!(v.verify(&future_nbf), Err(AuthError::Invalid));
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let v = Verifier::hmac(SECRET, &cfg(&[("JWT_ISSUER", "me"), ("JWT_AUDIENCE", "gw")]));
        let exp = now_secs() + 60;
        assert!(
            v.verify(&sign(
                json!({"sub": "a", "exp": exp, "iss": "me", "aud": "gw"}),
                Algorithm::HS256,
                SECRET
            ))
            .is_ok()
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": exp, "iss": "you", "aud": "gw"}),
                Algorithm::HS256,
                SECRET
            )),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": exp, "iss": "me"}),
                Algorithm::HS256,
                SECRET
            )),
            Err(AuthError::Invalid)
        );
        // Without JWT_AUDIENCE, a token that carries an audience is still accepted.
        let open = Verifier::hmac(SECRET, &cfg(&[]));
        assert!(
            open.verify(&sign(
                json!({"sub": "a", "exp": exp, "aud": "x"}),
                Algorithm::HS256,
                SECRET
            ))
            .is_ok()
        );
    }

    #[test]
    fn sub_must_match_the_pattern() {
        let v = Verifier::hmac(SECRET, &cfg(&[]));
        for bad in ["", "a b", "é", &"a".repeat(129)] {
            let t = sign(json!({"sub": bad, "exp": now_secs() + 60}), Algorithm::HS256, SECRET);
            assert_eq!(v.verify(&t), Err(AuthError::Invalid), "{bad:?}");
        }
        assert!(valid_user_id("user_1.x:y@z-w"));
        assert!(valid_user_id(&"a".repeat(128)));
    }

    #[test]
    fn token_sources_in_order() {
        let auth = json!({"token": "A"});
        assert_eq!(
            handshake_token(Some(&auth), Some(b"Bearer B"), Some("token=C")).unwrap(),
            "A"
        );
        let empty = json!({"token": ""});
        assert_eq!(
            handshake_token(Some(&empty), Some(b"Bearer B"), Some("token=C")).unwrap(),
            "B"
        );
        assert_eq!(
            handshake_token(None, Some(b"Bearer "), Some("x=1&token=C")).unwrap(),
            "C"
        );
        assert_eq!(handshake_token(None, None, Some("token=")), Err(AuthError::Missing));
        assert_eq!(
            handshake_token(Some(&json!({"token": 5})), None, None),
            Err(AuthError::Invalid)
        );
        assert_eq!(handshake_token(None, Some(b"Basic abc"), Some("token=C")).unwrap(), "C");
        assert_eq!(handshake_token(None, None, None), Err(AuthError::Missing));
    }

    #[test]
    fn signer_round_trip_and_ttl() {
        let t = Signer::hmac(SECRET)
            .sign("bob", 90, Some(vec!["a".into(), "b*".into()]))
            .unwrap();
        let c = Verifier::hmac(SECRET, &cfg(&[])).verify(&t).unwrap();
        assert_eq!(c.rooms.unwrap(), vec!["a", "b*"]);
        assert!(c.exp >= now_secs() + 89 && c.exp <= now_secs() + 91);
        assert_eq!(parse_ttl("90s").unwrap(), 90);
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("1w").is_err() && parse_ttl("h").is_err() && parse_ttl("0s").is_err());
    }

    #[test]
    fn room_patterns() {
        let p = vec!["chat-*".to_string(), "lobby".to_string()];
        assert!(room_allowed(&p, "chat-1") && room_allowed(&p, "chat-") && room_allowed(&p, "lobby"));
        assert!(!room_allowed(&p, "lobby2") && !room_allowed(&p, "chat"));
    }
}
