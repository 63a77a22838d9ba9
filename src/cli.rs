//! The command line: `serve` (the default), `token`, `migrate` and `config`.

use clap::{Parser, Subcommand};

/// A Socket.IO-compatible real-time gateway. Configuration comes from the environment and an
/// optional `.env` file; see `.env.example`.
#[derive(Debug, Parser)]
#[command(
    name = "sio-gateway",
    version,
    about,
    after_help = "Configuration: environment variables, then ./.env (the working directory's only; \
                  the environment wins). Every variable is in .env.example; \
                  `sio-gateway config` prints the effective configuration, secrets masked."
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Print a signed token made with the configured secret, for development and tests.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// Lifetime: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Room patterns for the `rooms` claim, comma-separated (`a,b*`).
        #[arg(long)]
        rooms: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (every variable, defaults included, secrets masked)
    /// and exit.
    Config,
}
