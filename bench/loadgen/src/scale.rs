//! `fanout-recv`: the receiving side of the scale scenario (bench/scale.mjs).
//!
//! N authenticated sockets connect to one gateway node and join one room; a marker file
//! says when they are set up; then every `tick` event is counted until each member got
//! `--expect` of them, a stop file appears, or the timeout passes. Someone else (the
//! driver) sends the ticks, usually to another node, so the times here are wall-clock
//! microseconds since the Unix epoch: comparable between processes on one machine.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::time::{sleep, sleep_until, timeout};

use crate::Common;
use crate::proto::{Sock, Target, ack_ok, find_u64};
use crate::stats::{Hist, cpu_ms, rss_kib};

/// How long one handshake (TCP + WebSocket + CONNECT + `registered`) plus the join may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Sequence numbers at or above this are counted as malformed (bounds the per-socket bitmap).
const MAX_SEQ: u64 = 1 << 20;

/// Options of `fanout-recv`.
#[derive(clap::Args, Clone)]
pub struct FanoutRecv {
    /// Sockets to connect (one user each).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Room every socket joins.
    #[arg(long, default_value = "scale")]
    pub room: String,
    /// Ticks each member should get; the run ends as soon as every member has them
    /// (0: wait for the stop file or the timeout).
    #[arg(long, default_value_t = 0)]
    pub expect: u64,
    /// New connections started per second.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp_per_sec: f64,
    /// Written (atomically) once every socket is set up or failed: `{members, errors, …}`.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Stop counting as soon as this file exists.
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
    /// Bound on the set-up phase, in seconds (0: 60 + members / 100).
    #[arg(long, default_value_t = 0)]
    pub setup_timeout_secs: u64,
    /// Bound on the counting phase (after the ready marker), in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Wall-clock microseconds since the Unix epoch.
fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the sockets share.
struct Shared {
    /// Set when the ready marker goes out; a socket set up later is not a member.
    setup_over: Mutex<bool>,
    connected: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    received: AtomicU64,
    complete: AtomicUsize,
    dropped: AtomicUsize,
    first_us: AtomicU64,
    last_us: AtomicU64,
    hist: Mutex<Hist>,
    /// The members' tallies, added up as each reports (on the report signal or when it drops).
    totals: Mutex<Totals>,
}

/// The members' tallies added up.
#[derive(Default)]
struct Totals {
    reported: usize,
    got: u64,
    duplicates: u64,
    malformed: u64,
    dropped: usize,
    incomplete: usize,
    extra: u64,
    /// Sequence number (below `--expect`) → members that did not get it.
    missing: std::collections::BTreeMap<u64, usize>,
}

/// What the sockets are told: count, report the tallies (keep the sockets open), close.
const COUNT: u8 = 0;
const REPORT: u8 = 1;
const CLOSE: u8 = 2;

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Write `v` to `path` through a temporary file and a rename, so readers never see half.
fn write_atomic(path: &Path, v: &Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, serde_json::to_vec(v).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

pub async fn run(opts: Common, a: FanoutRecv) -> i32 {
    if opts.secret.is_empty() {
        eprintln!("loadgen: --secret (or JWT_SECRET) is required");
        return 2;
    }
    let target = match Target::new(&opts.url, &opts.secret) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 2;
        }
    };
    let (n, expect) = if opts.smoke {
        (a.members.min(20), a.expect.min(20))
    } else {
        (a.members, a.expect)
    };
    let prefix = opts
        .user_prefix
        .clone()
        .unwrap_or_else(|| format!("b{}-", std::process::id()));
    let gate = Arc::new(Semaphore::new(opts.connect_in_flight.max(1)));
    let sh = Arc::new(Shared {
        setup_over: Mutex::new(false),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        received: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        first_us: AtomicU64::new(u64::MAX),
        last_us: AtomicU64::new(0),
        hist: Mutex::new(Hist::default()),
        totals: Mutex::new(Totals::default()),
    });
    let (stage_tx, stage_rx) = watch::channel(COUNT);
    let room_arg = json!({ "roomId": a.room }).to_string();
    let setup_bound = Duration::from_secs(match a.setup_timeout_secs {
        0 => 60 + n as u64 / 100,
        s => s,
    });
    let t0 = Instant::now();
    let start = tokio::time::Instant::now();
    let setup_deadline = start + setup_bound;

    // Progress on stderr while the sockets are set up.
    let progress = {
        let sh = sh.clone();
        tokio::spawn(async move {
            loop {
                sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "fanout-recv: connected {} failed {} of {n} ({:.0} s)",
                    sh.connected.load(Relaxed),
                    sh.failed.load(Relaxed),
                    t0.elapsed().as_secs_f64()
                );
            }
        })
    };

    let ramp = if a.ramp_per_sec > 0.0 {
        a.ramp_per_sec
    } else {
        f64::INFINITY
    };
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / ramp);
        if at >= setup_deadline {
            sh.failed.fetch_add(n - i, Relaxed);
            sh.first_error
                .lock()
                .unwrap()
                .get_or_insert_with(|| "set-up timeout before connecting".into());
            break;
        }
        sleep_until(at).await;
        let (target, gate, sh, mut stage, room_arg) = (
            target.clone(),
            gate.clone(),
            sh.clone(),
            stage_rx.clone(),
            room_arg.clone(),
        );
        let user = format!("{prefix}s{i}");
        handles.push(tokio::spawn(async move {
            // Waiting for a handshake slot is bounded by the set-up phase, not by the timeout.
            let Ok(permit) = gate.acquire().await else { return };
            if *sh.setup_over.lock().unwrap() {
                return; // counted as failed by the ready marker
            }
            let setup = async {
                let mut s = Sock::connect(&target, &user).await?;
                let ack = s.call(1, "joinRoom", &room_arg, SETUP_TIMEOUT).await?;
                if !ack_ok(&ack) {
                    return Err(format!("joinRoom: {ack}"));
                }
                Ok(s)
            };
            let setup = timeout(SETUP_TIMEOUT, setup).await;
            drop(permit);
            let mut s = match setup {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    sh.failed.fetch_add(1, Relaxed);
                    sh.first_error.lock().unwrap().get_or_insert(e);
                    return;
                }
                Err(_) => {
                    sh.failed.fetch_add(1, Relaxed);
                    sh.first_error
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| "set-up timeout".into());
                    return;
                }
            };
            let late = {
                let over = sh.setup_over.lock().unwrap();
                if !*over {
                    sh.connected.fetch_add(1, Relaxed);
                }
                *over
            };
            if late {
                // The ready marker is out and counted this socket as failed.
                s.close().await;
                return;
            }
            let (mut got, mut dups, mut bad, mut alive, mut reported) = (0u64, 0u64, 0u64, true, false);
            let mut seen: Vec<u64> = Vec::new();
            let mut lat: Vec<u64> = Vec::new();
            let report = |got: u64, dups: u64, bad: u64, alive: bool, lat: &mut Vec<u64>, seen: &[u64]| {
                {
                    let mut h = sh.hist.lock().unwrap();
                    for v in lat.drain(..) {
                        h.record(v);
                    }
                }
                let mut t = sh.totals.lock().unwrap();
                t.reported += 1;
                t.got += got;
                t.duplicates += dups;
                t.malformed += bad;
                t.dropped += usize::from(!alive);
                if expect > 0 {
                    t.incomplete += usize::from(got < expect);
                    t.extra += got.saturating_sub(expect);
                    for seq in 0..expect.min(MAX_SEQ) {
                        let word = seen.get((seq / 64) as usize).copied().unwrap_or(0);
                        if word & (1 << (seq % 64)) == 0 {
                            *t.missing.entry(seq).or_default() += 1;
                        }
                    }
                }
            };
            loop {
                tokio::select! {
                    f = s.ws.next() => match s.handle(f).await {
                        Err(_) => {
                            alive = false;
                            break;
                        }
                        Ok(p) => if let Some(txt) = p.is_event("tick") {
                            if reported {
                                continue; // counting is over
                            }
                            let now = epoch_us();
                            sh.received.fetch_add(1, Relaxed);
                            sh.first_us.fetch_min(now, Relaxed);
                            sh.last_us.fetch_max(now, Relaxed);
                            got += 1;
                            match find_u64(txt, "seq") {
                                Some(seq) if seq < MAX_SEQ => {
                                    let (w, b) = ((seq / 64) as usize, seq % 64);
                                    if seen.len() <= w {
                                        seen.resize(w + 1, 0);
                                    }
                                    if seen[w] & (1 << b) != 0 {
                                        dups += 1;
                                    }
                                    seen[w] |= 1 << b;
                                }
                                _ => bad += 1,
                            }
                            if let Some(sent) = find_u64(txt, "t") {
                                lat.push(now.saturating_sub(sent));
                                if lat.len() >= 256 {
                                    let mut h = sh.hist.lock().unwrap();
                                    for v in lat.drain(..) {
                                        h.record(v);
                                    }
                                }
                            }
                            if expect > 0 && got == expect {
                                sh.complete.fetch_add(1, Relaxed);
                            }
                        }
                    },
                    r = stage.changed() => {
                        let now = if r.is_err() { CLOSE } else { *stage.borrow_and_update() };
                        if now >= REPORT && !reported {
                            reported = true;
                            report(got, dups, bad, alive, &mut lat, &seen);
                        }
                        if now >= CLOSE {
                            break;
                        }
                    }
                }
            }
            if !reported {
                // Dropped while counting.
                sh.dropped.fetch_add(1, Relaxed);
                report(got, dups, bad, alive, &mut lat, &seen);
            }
            if alive {
                s.close().await;
            }
        }));
    }

    // Set-up: every socket accounted for, or the bound.
    while sh.connected.load(Relaxed) + sh.failed.load(Relaxed) < n && tokio::time::Instant::now() < setup_deadline {
        sleep(Duration::from_millis(20)).await;
    }
    progress.abort();
    let members = {
        let mut over = sh.setup_over.lock().unwrap();
        *over = true;
        sh.connected.load(Relaxed)
    };
    let setup_secs = t0.elapsed().as_secs_f64();
    let setup_errors = n - members;
    let ready_us = epoch_us();
    let self_rss = rss_kib("self");
    let cpu_ready = cpu_ms("self");
    let marker = json!({
        "pid": std::process::id(),
        "members": members,
        "errors": setup_errors,
        "first_error": sh.first_error.lock().unwrap().clone(),
        "setup_secs": round(setup_secs),
        "ready_us": ready_us,
    });
    eprintln!("fanout-recv: ready {marker}");
    if let Some(path) = &a.ready_file
        && let Err(e) = write_atomic(path, &marker)
    {
        eprintln!("loadgen: cannot write {}: {e}", path.display());
    }

    // Counting: until every member got `expect`, the stop file, or the timeout.
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let mut next_progress = Instant::now();
    let stopped_by = loop {
        if Instant::now() >= next_progress {
            // For the driver: it stops waiting once these stop moving.
            next_progress += Duration::from_secs(1);
            eprintln!(
                "fanout-recv: received {} complete {} of {members}",
                sh.received.load(Relaxed),
                sh.complete.load(Relaxed)
            );
        }
        if expect > 0 && members > 0 && sh.complete.load(Relaxed) >= members {
            sleep(Duration::from_millis(100)).await; // an extra delivery would arrive now
            break "complete";
        }
        if a.stop_file.as_deref().is_some_and(Path::exists) {
            break "stop-file";
        }
        if Instant::now() >= deadline {
            break "timeout";
        }
        if members > 0 && sh.dropped.load(Relaxed) >= members {
            break "all-dropped";
        }
        sleep(Duration::from_millis(20)).await;
    };
    let counting_end_us = epoch_us();
    let cpu_end = cpu_ms("self");
    let rss_end = rss_kib("self");
    // Every member reports its tally (dropped ones already have); bounded.
    let _ = stage_tx.send(REPORT);
    let report_deadline = Instant::now() + Duration::from_secs(10);
    while sh.totals.lock().unwrap().reported < members && Instant::now() < report_deadline {
        sleep(Duration::from_millis(5)).await;
    }
    let t = std::mem::take(&mut *sh.totals.lock().unwrap());
    let (got, dups, bad, dropped, incomplete, extra) =
        (t.got, t.duplicates, t.malformed, t.dropped, t.incomplete, t.extra);
    let unreported = members.saturating_sub(t.reported);
    // The sequence numbers some member missed (at most 20, with how many members missed each).
    let missing_seqs: Vec<[u64; 2]> = t.missing.iter().take(20).map(|(&seq, &k)| [seq, k as u64]).collect();
    let expected = members as u64 * expect;
    let lost = expected.saturating_sub(got);
    let first = sh.first_us.load(Relaxed);
    let last = sh.last_us.load(Relaxed);
    let lossless = members == n && lost == 0 && extra == 0 && dups == 0 && bad == 0 && dropped == 0 && unreported == 0;
    let out = json!({
        "scenario": "fanout-recv",
        "url": opts.url,
        "room": a.room,
        "requested": n,
        "members": members,
        "member_errors": setup_errors,
        "first_error": sh.first_error.lock().unwrap().clone(),
        "setup_secs": round(setup_secs),
        "ready_us": ready_us,
        "expect_per_member": expect,
        "expected": expected,
        "received": got,
        "lost": lost,
        "extra": extra,
        "duplicates": dups,
        "malformed": bad,
        "sockets_incomplete": incomplete,
        "sockets_dropped": dropped,
        "sockets_unreported": unreported,
        "missing_seqs": missing_seqs,
        "first_arrival_us": (first != u64::MAX).then_some(first),
        "last_arrival_us": (last != 0).then_some(last),
        "latency": sh.hist.lock().unwrap().summary(),
        "stopped_by": stopped_by,
        "counting_end_us": counting_end_us,
        "loadgen_cpu_ms_counting": match (cpu_ready, cpu_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        "loadgen_cpu_ms_total": cpu_end,
        "loadgen_rss_kib_ready": self_rss,
        "loadgen_rss_kib_end": rss_end,
        "lossless": lossless,
    });
    // The result goes out now; the sockets stay open until the stop file (when the run was
    // complete and there is one), so this node's closes do not disturb the others' counting.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{out}");
        let _ = stdout.flush();
    }
    if stopped_by == "complete"
        && let Some(stop) = &a.stop_file
    {
        while !stop.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = stage_tx.send(CLOSE);
    let _ = timeout(Duration::from_secs(10), futures_util::future::join_all(handles)).await;
    if opts.smoke && !lossless {
        eprintln!("loadgen: something was lost (see \"lossless\" in the output)");
        return 1;
    }
    0
}
