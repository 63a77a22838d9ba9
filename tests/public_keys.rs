//! Public-key verification: the algorithm family follows the configured key, and tokens of
//! another family (algorithm confusion) or with `alg: none` are refused.

mod common;

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sio_gateway::{
    Config,
    auth::{AuthError, Verifier},
    clock::unix_secs as now_secs,
};

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn cfg() -> Config {
    let map: HashMap<String, String> = HashMap::new();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

fn claims() -> serde_json::Value {
    json!({"sub": "alice", "exp": now_secs() + 60})
}

fn sign(alg: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims(), key).unwrap()
}

/// RSA keys verify RS256/384/512 and PS256/384/512.
#[test]
fn rsa_family() {
    let v = Verifier::public_key(&key("rsa-public.pem"), &cfg()).unwrap();
    let private = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    use Algorithm::*;
    for alg in [RS256, RS384, RS512, PS256, PS384, PS512] {
        assert_eq!(v.verify(&sign(alg, &private)).unwrap().sub, "alice", "{alg:?}");
    }
}

/// HS256 signed with the RSA public key as its secret is algorithm confusion: refused.
#[test]
fn hmac_with_the_public_key_is_refused() {
    let public = key("rsa-public.pem");
    let v = Verifier::public_key(&public, &cfg()).unwrap();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let forged = sign(alg, &EncodingKey::from_secret(&public));
        assert_eq!(v.verify(&forged), Err(AuthError::Invalid), "{alg:?}");
    }
}

/// ES256 with P-256, ES384 with P-384; a curve mismatch is refused.
#[test]
fn ec_curves() {
    let p256 = Verifier::public_key(&key("ec256-public.pem"), &cfg()).unwrap();
    let p384 = Verifier::public_key(&key("ec384-public.pem"), &cfg()).unwrap();
    let k256 = EncodingKey::from_ec_pem(&key("ec256-private.pem")).unwrap();
    let k384 = EncodingKey::from_ec_pem(&key("ec384-private.pem")).unwrap();
    assert!(p256.verify(&sign(Algorithm::ES256, &k256)).is_ok());
    assert!(p384.verify(&sign(Algorithm::ES384, &k384)).is_ok());
    assert_eq!(p256.verify(&sign(Algorithm::ES384, &k384)), Err(AuthError::Invalid));
    let rsa = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    assert_eq!(p256.verify(&sign(Algorithm::RS256, &rsa)), Err(AuthError::Invalid));
}

/// Ed25519 verifies EdDSA only.
#[test]
fn ed25519() {
    let v = Verifier::public_key(&key("ed25519-public.pem"), &cfg()).unwrap();
    let k = EncodingKey::from_ed_pem(&key("ed25519-private.pem")).unwrap();
    assert!(v.verify(&sign(Algorithm::EdDSA, &k)).is_ok());
    let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(&key("ed25519-public.pem")));
    assert_eq!(v.verify(&forged), Err(AuthError::Invalid));
}

/// `alg: none` is refused with a public key too.
#[test]
fn none_is_refused() {
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let v = Verifier::public_key(&key("rsa-public.pem"), &cfg()).unwrap();
    let none = format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT"})), b64(claims()));
    assert_eq!(v.verify(&none), Err(AuthError::Invalid));
}

/// Garbage in JWT_PUBLIC_KEY_FILE is refused at start with a message naming the variable.
#[test]
fn bad_pem_is_refused() {
    let err = Verifier::public_key(b"not a key", &cfg()).err().unwrap();
    assert!(err.contains("JWT_PUBLIC_KEY_FILE"), "{err}");
}

/// End to end: a gateway configured with JWT_PUBLIC_KEY_FILE admits an RS256 token.
#[tokio::test]
async fn gateway_with_public_key_file() {
    let path = format!("{}/tests/fixtures/keys/rsa-public.pem", env!("CARGO_MANIFEST_DIR"));
    let app = common::TestApp::spawn(&[("JWT_SECRET", ""), ("JWT_PUBLIC_KEY_FILE", &path)]).await;
    let rsa = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    let mut s = app
        .socket(json!({ "token": sign(Algorithm::RS256, &rsa) }))
        .await
        .expect("RS256 token admitted");
    assert_eq!(s.event("registered").await.unwrap()["userId"], "alice");
    let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(&key("rsa-public.pem")));
    assert_eq!(
        app.socket(json!({ "token": forged })).await.err().as_deref(),
        Some("invalid_token")
    );
    app.stop().await;
}
