//! Signatures of the gateway's calls to a backend (the event proxy, webhooks): the
//! HMAC-SHA256 of `<timestamp>.<body>` with a shared secret, sent as
//! `X-Sio-Signature: sha256=<hex>` beside `X-Sio-Timestamp: <unix seconds>`.

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
