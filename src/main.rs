//! The `sio-gateway` binary: loads `.env`, reads the configuration, and runs a command.

use std::process::ExitCode;

use clap::Parser;
use sio_gateway::{
    app, auth,
    cli::{Cli, Command},
    config::{Config, JwtKeySource},
    secrets, shutdown, telemetry,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `.env` of the working directory only; variables already in the environment win over it.
    let dotenv = sio_gateway::config::load_dotenv(std::path::Path::new(".env"));
    // Fatal errors follow LOG_FORMAT (read here too: the configuration may be what failed).
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    if let Err(e) = dotenv {
        fatal(json, &format!("configuration error: {e}"));
        return ExitCode::from(2);
    }
    let cfg = match Config::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            fatal(json, &format!("configuration error: {e}"));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(json, &format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                telemetry::init_logging(cfg.log_json);
                let listener = app::bind(&cfg.host, cfg.port)
                    .map_err(|e| format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port))?;
                app::serve(cfg, listener, shutdown::signal()).await
            }
            Command::Token { sub, ttl, rooms } => print_token(&cfg, &sub, &ttl, rooms.as_deref()),
            Command::Migrate => {
                telemetry::init_logging(cfg.log_json);
                // `migrate` applies them whatever MIGRATE_ON_START says.
                app::open_db(&Config {
                    migrate_on_start: true,
                    ..cfg
                })
                .await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Config => {
                for (name, value) in cfg.effective() {
                    println!("{name}={value}");
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration found wrong only while starting (a schema file) exits as one found
        // wrong while reading the variables.
        Err(e) if e.is::<sio_gateway::config::ConfigError>() => {
            fatal(json, &format!("configuration error: {e}"));
            ExitCode::from(2)
        }
        Err(e) => {
            fatal(json, &e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Says why the process stops, on stderr: `sio-gateway: <message>`, or with `LOG_FORMAT=json`
/// one JSON object shaped like the log lines (`timestamp`, `level`, `target`, `message`).
fn fatal(json: bool, message: &str) {
    if json {
        let line = serde_json::json!({
            "timestamp": sio_gateway::clock::now_rfc3339_ms(),
            "level": "ERROR",
            "target": "sio_gateway",
            "message": message,
        });
        eprintln!("{line}");
    } else {
        eprintln!("sio-gateway: {message}");
    }
}

fn print_token(cfg: &Config, sub: &str, ttl: &str, rooms: Option<&str>) -> Result<(), app::StartError> {
    let ttl = auth::parse_ttl(ttl).map_err(|e| format!("--ttl {e}"))?;
    let rooms = rooms.map(|r| {
        r.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    // The secret the servers use: JWT_SECRET, or the file a server generated. `token` never
    // makes one, since no server would know it.
    let secret = match &cfg.jwt_key {
        JwtKeySource::Secret(s) => s.clone(),
        JwtKeySource::PublicKeyFile(_) => {
            return Err(
                "`token` signs with an HMAC secret; with JWT_PUBLIC_KEY_FILE, sign tokens with your private key".into(),
            );
        }
        JwtKeySource::Generated => {
            let dir = cfg.data_dir();
            let path = secrets::path_of(&dir, secrets::SECRET_FILE);
            secrets::read_existing(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .ok_or_else(|| {
                    format!(
                        "no JWT secret: JWT_SECRET is not set and {} does not exist (the server creates it on its first start); set JWT_SECRET, or start the server once from this folder",
                        path.display()
                    )
                })?
                .into_bytes()
        }
    };
    println!("{}", auth::Signer::hmac(&secret).for_config(cfg).sign(sub, ttl, rooms)?);
    Ok(())
}
