//! Zero-configuration secrets: a JWT secret and an API key generated on first start.
//!
//! When neither `JWT_SECRET` nor `JWT_PUBLIC_KEY_FILE` is set, the gateway keeps a random
//! secret in `sio-gateway.secret` beside the SQLite database; with `API_KEYS` unset it keeps a
//! key in `sio-gateway.api-key`. Both files are created owner-only (mode 0600). The log names
//! the files, never their content.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
};

use rand::RngCore;

/// File name of the generated JWT secret.
pub const SECRET_FILE: &str = "sio-gateway.secret";
/// File name of the generated API key.
pub const API_KEY_FILE: &str = "sio-gateway.api-key";

/// Reads the value kept in `dir/name`, or generates one and writes it there, owner-only.
/// Returns the value and whether it was generated now.
pub fn load_or_create(dir: &Path, name: &str) -> std::io::Result<(String, bool)> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(v) if !v.trim().is_empty() => return Ok((v.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    let value = random_hex(32);
    let mut opts = OpenOptions::new();
    // `create_new`: two nodes starting together on one folder must end with one secret; the
    // one that loses the race reads the winner's.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let theirs = std::fs::read_to_string(&path)?.trim().to_string();
            if theirs.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} is empty: delete it to regenerate",
                    path.display()
                )));
            }
            return Ok((theirs, false));
        }
        Err(e) => return Err(e),
    };
    f.write_all(value.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok((value, true))
}

/// The path of a generated file, for log lines.
pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_owner_only_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path(), SECRET_FILE).unwrap();
        assert!(created);
        assert_eq!(a.len(), 64);
        let (b, created) = load_or_create(dir.path(), SECRET_FILE).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
