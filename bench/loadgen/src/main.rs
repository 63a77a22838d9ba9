//! `loadgen`: drives a Socket.IO v5 gateway over WebSocket and prints one JSON object of
//! results per run. See bench/README.md.

mod proto;
mod scale;
mod scenarios;
mod stats;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The command line: the options every subcommand shares, and the subcommand.
#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Engine.IO v4 / Socket.IO v5 load generator for sio-gateway"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub cmd: AnyCmd,
}

/// Options shared by every subcommand.
#[derive(Args)]
pub struct Common {
    /// Gateway base URL (http://host:port).
    #[arg(long, global = true, env = "BENCH_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// HMAC secret the gateway verifies JWTs with (JWT_SECRET of the gateway).
    #[arg(long, global = true, env = "JWT_SECRET", default_value = "", hide_env_values = true)]
    pub secret: String,
    /// Service key for POST /api/emit and /api/notifications (one of the gateway's API_KEYS).
    #[arg(
        long,
        global = true,
        env = "BENCH_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub api_key: String,
    /// Server process id: RSS and CPU time are read from /proc/<pid>.
    #[arg(long, global = true)]
    pub pid: Option<u32>,
    /// Runtime worker threads for the load generator (1 = a current-thread runtime, one core).
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// Prefix of the user ids (`sub`) of this run; default `b<loadgen pid>-`.
    #[arg(long, global = true)]
    pub user_prefix: Option<String>,
    /// Handshakes in flight while scenarios set up their sockets.
    #[arg(long, global = true, default_value_t = 200)]
    pub connect_in_flight: usize,
    /// Tiny sizes, a couple of seconds; exit non-zero if anything was lost.
    #[arg(long, global = true)]
    pub smoke: bool,
}

/// Every subcommand: the single-gateway scenarios and the scale scenario's receiver.
#[derive(Subcommand)]
pub enum AnyCmd {
    #[command(flatten)]
    Scenario(Cmd),
    /// Scale scenario receiver: N sockets join a room on one node, count `tick`s (bench/scale.mjs).
    FanoutRecv(scale::FanoutRecv),
}

#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum AckEvent {
    #[value(name = "typing")]
    Typing,
    #[value(name = "sendMessage")]
    SendMessage,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Connect N authenticated sockets, hold them, report the server's RSS per socket.
    Hold {
        #[arg(long, default_value_t = 2000)]
        sockets: usize,
        /// New connections started per second.
        #[arg(long, default_value_t = 2000.0)]
        ramp_per_sec: f64,
        /// How long to keep the sockets open after the RSS reading (they must all survive).
        #[arg(long, default_value_t = 5)]
        hold_secs: u64,
        /// Sockets per user (the gateway's default per-user limit is 10).
        #[arg(long, default_value_t = 1)]
        per_user: usize,
    },
    /// Open N sockets (WebSocket + CONNECT + `registered`) with at most K in flight, close each.
    ConnectRate {
        #[arg(long, default_value_t = 5000)]
        total: usize,
        #[arg(long, default_value_t = 200)]
        in_flight: usize,
    },
    /// M sockets in room "bench"; K POST /api/emit to that room; count and time deliveries.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Padding bytes in each event's data.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Broadcasts per second (0 = as fast as the POSTs go: saturation).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// POSTs in flight at once.
        #[arg(long, default_value_t = 8)]
        post_in_flight: usize,
    },
    /// N sockets in rooms; events with ack ids at an aggregate rate; ack round-trip times.
    AckRtt {
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        /// Events per second, all sockets together.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, value_enum, default_value = "typing")]
        event: AckEvent,
        /// Sockets per room (rooms "bench-<k>"); 0 puts every socket in the one room "bench".
        #[arg(long, default_value_t = 10)]
        room_size: usize,
    },
    /// One socket per user; POST /api/notifications at R/s; POST → `notification` latency.
    NotifyLatency {
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 100)]
        users: usize,
    },
    /// Every scenario, small, against one gateway; non-zero exit if anything was lost.
    Smoke,
}

fn main() {
    let Cli { common, cmd } = Cli::parse();
    let rt = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(common.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    proto::now_us();
    let code = match cmd {
        AnyCmd::Scenario(cmd) => rt.block_on(scenarios::run(common, cmd)),
        AnyCmd::FanoutRecv(args) => rt.block_on(scale::run(common, args)),
    };
    std::process::exit(code);
}
