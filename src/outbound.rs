//! The gateway's calls to a backend (the event proxy, webhooks): one kind of pooled HTTP
//! client, and the signature every call carries — the HMAC-SHA256 of `<timestamp>.<body>` with
//! a shared secret, sent as `X-Sio-Signature: sha256=<hex>` beside
//! `X-Sio-Timestamp: <unix seconds>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the Unix time (seconds) the call was signed at.
pub const TIMESTAMP_HEADER: &str = "x-sio-timestamp";
/// The header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-sio-signature";

/// The value of [`SIGNATURE_HEADER`] for `body` signed at `timestamp` with `secret`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Makes ring the process's TLS cryptography (reqwest uses rustls without choosing one; this
/// build has no OpenSSL and no aws-lc). Idempotent: a second call finds it installed.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A pooled keep-alive client for calls to a backend: each call bounded by `timeout`, no
/// system proxy (the backend is named by its URL), no redirects followed.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    install_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A JSON POST of `body` to `url`, signed now with `secret`.
pub fn signed_post(
    client: &reqwest::Client,
    url: reqwest::Url,
    secret: &[u8],
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let timestamp = crate::clock::unix_secs();
    let signature = signature(secret, timestamp, &body);
    client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac() {
        // HMAC-SHA256("key", "1700000000.{}"), computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac key`.
        let sig = signature(b"key", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(sig, signature(b"key", 1_700_000_001, b"{}"), "the timestamp is signed");
        assert_ne!(sig, signature(b"kez", 1_700_000_000, b"{}"), "the secret matters");
    }
}
