//! The `sio-gateway` binary: loads `.env`, reads the configuration, and runs a command.

use std::process::ExitCode;

use clap::Parser;
use sio_gateway::{
    app, auth,
    cli::{Cli, Command},
    config::Config,
    shutdown, telemetry,
};

fn main() -> ExitCode {
    // Variables already in the environment win over `.env`.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let cfg = match Config::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("sio-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sio-gateway: cannot start the runtime: {e}");
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
                app::open_db(&cfg).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration found wrong only while starting (a schema file) exits as one found
        // wrong while reading the variables.
        Err(e) if e.is::<sio_gateway::config::ConfigError>() => {
            eprintln!("sio-gateway: configuration error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sio-gateway: {e}");
            ExitCode::FAILURE
        }
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
    let keys = app::load_keys(cfg)?;
    let secret = keys
        .jwt_secret
        .ok_or("`token` signs with an HMAC secret; with JWT_PUBLIC_KEY_FILE, sign tokens with your private key")?;
    println!("{}", auth::Signer::hmac(&secret).for_config(cfg).sign(sub, ttl, rooms)?);
    Ok(())
}
