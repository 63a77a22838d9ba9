//! Zero-configuration secrets: a JWT secret and an API key generated on first start.
//!
//! When neither `JWT_SECRET` nor `JWT_PUBLIC_KEY_FILE` is set, the gateway keeps a random
//! secret in `sio-gateway.secret` beside the SQLite database; with `API_KEYS` unset it keeps a
//! key in `sio-gateway.api-key`. Both files are created owner-only (mode 0600). The log names
//! the files, never their content.
//!
//! Several nodes may start together on one folder and must end with one secret. A file in
//! place is therefore always whole: it is written to a temporary file, synced, and renamed
//! into place. Whoever generates holds an advisory lock on `<name>.lock` (released by the
//! system when its process dies), so a second start waits for the first instead of reading
//! a half-made file, and a file left empty or cut short by a crash is replaced, not trusted.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rand::RngCore;

/// File name of the generated JWT secret.
pub const SECRET_FILE: &str = "sio-gateway.secret";
/// File name of the generated API key.
pub const API_KEY_FILE: &str = "sio-gateway.api-key";

/// Random bytes in a generated value (written as twice as many hex characters).
const VALUE_BYTES: usize = 32;
/// Shortest content taken as a value: a kept secret must be at least 32 bytes; anything
/// shorter (an empty file included) is what a crash left, and is generated again.
const MIN_VALUE_CHARS: usize = 32;
/// How long a start waits for another one that is generating the same file.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Reads the value kept in `dir/name`, or generates one and writes it there, owner-only.
/// Returns the value and whether it was generated now.
pub fn load_or_create(dir: &Path, name: &str) -> std::io::Result<(String, bool)> {
    let path = dir.join(name);
    if let Some(value) = read_whole(&path)? {
        return Ok((value, false));
    }
    std::fs::create_dir_all(dir)?;
    let _lock = lock(&dir.join(format!("{name}.lock")))?;
    // Whoever held the lock before may have written it meanwhile.
    if let Some(value) = read_whole(&path)? {
        return Ok((value, false));
    }
    let value = random_hex(VALUE_BYTES);
    write_atomically(dir, &path, &value)?;
    Ok((value, true))
}

/// The value kept in `path`, or `None` when there is none (no file, or one a crash left
/// too short); never creates it.
pub fn read_existing(path: &Path) -> std::io::Result<Option<String>> {
    read_whole(path)
}

/// The value in `path`, or `None` when there is no file or it is too short to be one.
fn read_whole(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim().len() >= MIN_VALUE_CHARS => Ok(Some(v.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the exclusive lock on `path` (created if needed), waiting at most [`LOCK_WAIT`].
/// The lock is released when the returned file is dropped, or when the process dies.
fn lock(path: &Path) -> std::io::Result<File> {
    let file = owner_only()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(format!(
                    "{} is held by another process for more than {} s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Writes `value` to a temporary file beside `path`, syncs it, and renames it over `path`
/// (replacing an incomplete file), so `path` is never seen half-written.
fn write_atomically(dir: &Path, path: &Path, value: &str) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), random_hex(4)));
    let written = (|| {
        let mut f = owner_only().write(true).create_new(true).open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself survives a crash once the folder is synced (where folders can be).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Open options that create files readable and writable by the owner only.
fn owner_only() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
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

    /// A file left empty or cut short by a crash is generated again, owner-only, instead of
    /// blocking every later start.
    #[test]
    fn an_empty_or_short_file_is_replaced() {
        for left in ["", "\n", "0123abcd"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(API_KEY_FILE), left).unwrap();
            let (value, created) = load_or_create(dir.path(), API_KEY_FILE).unwrap();
            assert!(created, "{left:?}");
            assert_eq!(value.len(), 64);
            let kept = std::fs::read_to_string(dir.path().join(API_KEY_FILE)).unwrap();
            assert_eq!(kept.trim(), value);
            assert_eq!(load_or_create(dir.path(), API_KEY_FILE).unwrap(), (value, false));
        }
    }

    /// A start that finds the file empty while another start holds the lock (it is writing)
    /// waits for it and takes its value, rather than failing or generating a second one.
    #[test]
    fn a_start_waits_for_the_one_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE);
        let held = lock(&dir.path().join(format!("{SECRET_FILE}.lock"))).unwrap();
        std::fs::write(&path, "").unwrap();
        let d = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || load_or_create(&d, SECRET_FILE));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "did not wait for the lock");
        let theirs = "f".repeat(64);
        write_atomically(dir.path(), &path, &theirs).unwrap();
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), (theirs, false));
    }

    /// Starts racing on one folder all end with the same value, generated once.
    #[test]
    fn concurrent_starts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
        let starts: Vec<_> = (0..16)
            .map(|_| {
                let (d, b) = (dir.path().to_path_buf(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    load_or_create(&d, SECRET_FILE).unwrap()
                })
            })
            .collect();
        let results: Vec<(String, bool)> = starts.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        assert!(results.iter().all(|(v, _)| *v == results[0].0 && v.len() == 64));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }
}
