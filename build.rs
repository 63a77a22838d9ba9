//! Build script: the git commit of the source, for `sio_build_info{git_commit}` on `/metrics`.
//! `SIO_GIT_COMMIT` in the build's environment wins (a packaged build without `.git`);
//! otherwise `git rev-parse --short=12 HEAD`, or `unknown` where git or `.git` is missing.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SIO_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("SIO_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "unknown".into())
        });
    println!("cargo:rustc-env=SIO_GIT_COMMIT={commit}");
}
