//! The scenarios. Each is bounded in count and time and returns (results, nothing_lost).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{MissedTickBehavior, sleep, sleep_until, timeout};

use crate::proto::{In, Sock, Target, ack_ok, find_u64, now_us};
use crate::stats::{CpuMeter, Hist, rss_kib};
use crate::{AckEvent, Cmd, Common};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Shared settings of one run.
pub struct Ctx {
    target: Arc<Target>,
    http: reqwest::Client,
    api_key: String,
    pid: Option<u32>,
    prefix: String,
    gate: Arc<Semaphore>,
}

pub async fn run(cli: Common, cmd: Cmd) -> i32 {
    if cli.secret.is_empty() {
        eprintln!("loadgen: --secret (or JWT_SECRET) is required");
        return 2;
    }
    let target = match Target::new(&cli.url, &cli.secret) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 2;
        }
    };
    let ctx = Arc::new(Ctx {
        target,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("http client"),
        api_key: cli.api_key.clone(),
        pid: cli.pid,
        prefix: cli
            .user_prefix
            .clone()
            .unwrap_or_else(|| format!("b{}-", std::process::id())),
        gate: Arc::new(Semaphore::new(cli.connect_in_flight.max(1))),
    });
    let needs_key = matches!(cmd, Cmd::Fanout { .. } | Cmd::NotifyLatency { .. } | Cmd::Smoke);
    if needs_key && ctx.api_key.is_empty() {
        eprintln!("loadgen: --api-key (or BENCH_API_KEY) is required for this scenario");
        return 2;
    }
    let smoke = cli.smoke || matches!(cmd, Cmd::Smoke);
    let (out, ok) = match cmd {
        Cmd::Hold {
            sockets,
            ramp_per_sec,
            hold_secs,
            per_user,
        } => {
            let (n, h) = if smoke {
                (sockets.min(20), hold_secs.min(1))
            } else {
                (sockets, hold_secs)
            };
            hold(&ctx, n, ramp_per_sec, h, per_user).await
        }
        Cmd::ConnectRate { total, in_flight } => {
            let (n, k) = if smoke {
                (total.min(50), in_flight.min(10))
            } else {
                (total, in_flight)
            };
            connect_rate(&ctx, n, k).await
        }
        Cmd::Fanout {
            members,
            messages,
            size,
            rate,
            post_in_flight,
        } => {
            let (m, k, b) = if smoke {
                (members.min(20), messages.min(20), size.min(16))
            } else {
                (members, messages, size)
            };
            fanout(&ctx, m, k, b, rate, post_in_flight).await
        }
        Cmd::AckRtt {
            sockets,
            rate,
            secs,
            event,
            room_size,
        } => {
            let (n, r, s) = if smoke {
                (sockets.min(10), rate.min(50.0), secs.min(2))
            } else {
                (sockets, rate, secs)
            };
            ack_rtt(&ctx, n, r, s, event, room_size).await
        }
        Cmd::NotifyLatency { rate, secs, users } => {
            let (u, r, s) = if smoke {
                (users.min(10), rate.min(50.0), secs.min(2))
            } else {
                (users, rate, secs)
            };
            notify_latency(&ctx, u, r, s).await
        }
        Cmd::Smoke => smoke_all(&ctx).await,
    };
    println!("{}", serde_json::to_string(&out).unwrap());
    if smoke && !ok {
        eprintln!("loadgen: something was lost (see \"lossless\" in the output)");
        return 1;
    }
    0
}

async fn smoke_all(ctx: &Arc<Ctx>) -> (Value, bool) {
    let mut all_ok = true;
    let mut out = serde_json::Map::new();
    let runs: Vec<(&str, (Value, bool))> = vec![
        ("hold", hold(ctx, 20, 200.0, 1, 1).await),
        ("connect_rate", connect_rate(ctx, 50, 10).await),
        ("fanout", fanout(ctx, 20, 20, 16, 0.0, 4).await),
        ("ack_rtt_typing", ack_rtt(ctx, 10, 50.0, 2, AckEvent::Typing, 5).await),
        (
            "ack_rtt_sendMessage",
            ack_rtt(ctx, 10, 50.0, 2, AckEvent::SendMessage, 5).await,
        ),
        ("notify_latency", notify_latency(ctx, 10, 50.0, 2).await),
    ];
    for (name, (v, ok)) in runs {
        if !ok {
            eprintln!("loadgen smoke: {name} lost something: {v}");
        }
        all_ok &= ok;
        out.insert(name.into(), v);
    }
    out.insert("scenario".into(), json!("smoke"));
    out.insert("lossless".into(), json!(all_ok));
    (Value::Object(out), all_ok)
}

// ---------------------------------------------------------------------------------------------
// helpers

/// Counts sockets that are set up (or failed to), and wakes the waiting scenario.
#[derive(Default)]
struct Ready {
    ok: AtomicUsize,
    err: AtomicUsize,
    first_error: Mutex<Option<String>>,
    notify: Notify,
}

impl Ready {
    fn ok(&self) {
        self.ok.fetch_add(1, Relaxed);
        self.notify.notify_one();
    }
    fn fail(&self, e: String) {
        self.err.fetch_add(1, Relaxed);
        self.first_error.lock().unwrap().get_or_insert(e);
        self.notify.notify_one();
    }
    /// Wait until `n` sockets are accounted for or the deadline passes.
    async fn wait(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.ok.load(Relaxed) + self.err.load(Relaxed) < n {
            if timeout(
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(1)),
                self.notify.notified(),
            )
            .await
            .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                break;
            }
        }
    }
    fn error(&self) -> Value {
        json!(self.first_error.lock().unwrap().clone())
    }
}

/// Connect with the shared handshake gate (at most `--connect-in-flight` at once).
async fn connect_gated(ctx: &Ctx, user: &str) -> Result<Sock, String> {
    let _permit = ctx.gate.acquire().await.map_err(|e| e.to_string())?;
    timeout(CONNECT_TIMEOUT, Sock::connect(&ctx.target, user))
        .await
        .map_err(|_| "handshake timeout".to_string())?
}

async fn join(s: &mut Sock, room: &str) -> Result<(), String> {
    let t = s
        .call(
            1,
            "joinRoom",
            &format!("{{\"roomId\":\"{room}\"}}"),
            Duration::from_secs(10),
        )
        .await?;
    if ack_ok(&t) {
        Ok(())
    } else {
        Err(format!("joinRoom: {t}"))
    }
}

async fn post(ctx: &Ctx, path: &str, body: String) -> Result<u16, String> {
    let r = ctx
        .http
        .post(format!("{}{path}", ctx.target.http_base))
        .header("authorization", format!("Bearer {}", ctx.api_key))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    Ok(status)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn cpu_json(m: &CpuMeter, per: u64, per_name: &str) -> Value {
    let (server, me, wall) = m.stop();
    let per_us = server
        .filter(|_| per > 0)
        .map(|s| round(s as f64 * 1000.0 / per as f64));
    json!({
        "server_cpu_ms": server,
        "loadgen_cpu_ms": me,
        "wall_ms": wall,
        format!("server_cpu_us_per_{per_name}"): per_us,
    })
}

fn merge(a: &mut Value, b: Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        a.extend(b);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. hold

async fn hold(ctx: &Arc<Ctx>, n: usize, ramp: f64, hold_secs: u64, per_user: usize) -> (Value, bool) {
    let pid = ctx.pid.map(|p| p.to_string());
    let rss_before = pid.as_deref().and_then(rss_kib);
    let self_before = rss_kib("self");
    let ready = Arc::new(Ready::default());
    let died = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let per_user = per_user.clamp(1, 10);
    let start = tokio::time::Instant::now();
    let ramp = if ramp > 0.0 { ramp } else { f64::INFINITY };
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        sleep_until(start + Duration::from_secs_f64(i as f64 / ramp)).await;
        let (ctx, ready, died, mut stop) = (ctx.clone(), ready.clone(), died.clone(), stop_rx.clone());
        handles.push(tokio::spawn(async move {
            let user = format!("{}h{}", ctx.prefix, i / per_user);
            let mut s = match connect_gated(&ctx, &user).await {
                Ok(s) => s,
                Err(e) => return ready.fail(e),
            };
            ready.ok();
            loop {
                tokio::select! {
                    f = s.ws.next() => if s.handle(f).await.is_err() { died.fetch_add(1, Relaxed); return; },
                    _ = stop.changed() => break,
                }
            }
            s.close().await;
        }));
    }
    ready.wait(n, Duration::from_secs(30)).await;
    let connect_secs = start.elapsed().as_secs_f64();
    sleep(Duration::from_secs(2)).await;
    let connected = ready.ok.load(Relaxed);
    let rss_after = pid.as_deref().and_then(rss_kib);
    let self_after = rss_kib("self");
    sleep(Duration::from_secs(hold_secs)).await;
    let rss_end = pid.as_deref().and_then(rss_kib);
    let dead = died.load(Relaxed);
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    let errors = ready.err.load(Relaxed);
    let per = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => Some(round((a as f64 - b as f64) / connected as f64)),
        _ => None,
    };
    let ok = errors == 0 && dead == 0 && connected == n;
    (
        json!({
            "scenario": "hold",
            "sockets": connected,
            "requested": n,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_end_kib": rss_end,
            "kib_per_socket": per,
            "connect_errors": errors,
            "first_error": ready.error(),
            "died_while_held": dead,
            "connect_secs": round(connect_secs),
            "loadgen_kib_per_socket": match (self_before, self_after) {
                (Some(b), Some(a)) if connected > 0 => Some(round((a as f64 - b as f64) / connected as f64)),
                _ => None,
            },
            "lossless": ok,
        }),
        ok,
    )
}

// ---------------------------------------------------------------------------------------------
// 2. connect-rate

async fn connect_rate(ctx: &Arc<Ctx>, n: usize, k: usize) -> (Value, bool) {
    let k = k.max(1);
    let sem = Arc::new(Semaphore::new(k));
    let hist = Arc::new(Mutex::new(Hist::default()));
    let errors = Arc::new(Ready::default());
    let cpu = CpuMeter::start(ctx.pid);
    let start = Instant::now();
    let run = async {
        for i in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (ctx, hist, errors) = (ctx.clone(), hist.clone(), errors.clone());
            tokio::spawn(async move {
                let user = format!("{}c{i}", ctx.prefix);
                let t0 = Instant::now();
                let r = timeout(CONNECT_TIMEOUT, Sock::connect(&ctx.target, &user)).await;
                let lat = t0.elapsed();
                drop(permit);
                match r {
                    Ok(Ok(s)) => {
                        hist.lock().unwrap().record(lat.as_micros() as u64);
                        errors.ok();
                        s.close().await;
                    }
                    Ok(Err(e)) => errors.fail(e),
                    Err(_) => errors.fail("handshake timeout".into()),
                }
            });
        }
        let _ = sem.acquire_many(k as u32).await;
    };
    let bounded = timeout(Duration::from_secs(60 + n as u64 / 100), run).await.is_err();
    let secs = start.elapsed().as_secs_f64();
    let ok_n = errors.ok.load(Relaxed);
    let err_n = errors.err.load(Relaxed);
    let mut out = json!({
        "scenario": "connect-rate",
        "total": n,
        "in_flight": k,
        "connected": ok_n,
        "errors": err_n,
        "first_error": errors.error(),
        "timed_out": bounded,
        "secs": round(secs),
        "connects_per_sec": round(ok_n as f64 / secs),
        "handshake": hist.lock().unwrap().summary(),
    });
    merge(&mut out, cpu_json(&cpu, ok_n as u64, "connect"));
    sleep(Duration::from_millis(200)).await; // let the closes go out
    let ok = ok_n == n && !bounded;
    out["lossless"] = json!(ok);
    (out, ok)
}

// ---------------------------------------------------------------------------------------------
// 3. fanout

async fn fanout(ctx: &Arc<Ctx>, m: usize, k: usize, size: usize, rate: f64, post_in_flight: usize) -> (Value, bool) {
    let ready = Arc::new(Ready::default());
    let hist = Arc::new(Mutex::new(Hist::default()));
    let received = Arc::new(AtomicU64::new(0));
    let complete = Arc::new(AtomicUsize::new(0));
    let last_us = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(m);
    for i in 0..m {
        let (ctx, ready, hist, received, complete, last_us, mut stop) = (
            ctx.clone(),
            ready.clone(),
            hist.clone(),
            received.clone(),
            complete.clone(),
            last_us.clone(),
            stop_rx.clone(),
        );
        handles.push(tokio::spawn(async move {
            let user = format!("{}f{i}", ctx.prefix);
            let mut s = match connect_gated(&ctx, &user).await {
                Ok(s) => s,
                Err(e) => {
                    ready.fail(e);
                    return None;
                }
            };
            if let Err(e) = join(&mut s, "bench").await {
                ready.fail(e);
                return None;
            }
            ready.ok();
            let (mut got, mut bad, mut alive) = (0u64, 0u64, true);
            let mut local = Vec::new();
            loop {
                tokio::select! {
                    f = s.ws.next() => match s.handle(f).await {
                        Err(_) => { alive = false; break; }
                        Ok(p) => if let Some(txt) = p.is_event("tick") {
                            let now = now_us();
                            match (find_u64(txt, "t"), find_u64(txt, "seq")) {
                                (Some(t), Some(_)) => local.push(now.saturating_sub(t)),
                                _ => bad += 1,
                            }
                            got += 1;
                            received.fetch_add(1, Relaxed);
                            last_us.fetch_max(now, Relaxed);
                            if got == k as u64 { complete.fetch_add(1, Relaxed); }
                            if local.len() >= 256 {
                                let mut h = hist.lock().unwrap();
                                for v in local.drain(..) { h.record(v); }
                            }
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
            {
                let mut h = hist.lock().unwrap();
                for v in local.drain(..) {
                    h.record(v);
                }
            }
            if alive {
                s.close().await;
            }
            Some((got, bad, alive))
        }));
    }
    ready.wait(m, Duration::from_secs(30 + m as u64 / 500)).await;
    let members = ready.ok.load(Relaxed);
    sleep(Duration::from_millis(200)).await;

    // The broadcasts.
    let pad = "x".repeat(size);
    let posts_ok = Arc::new(AtomicUsize::new(0));
    let post_err = Arc::new(Ready::default());
    let sem = Arc::new(Semaphore::new(post_in_flight.max(1)));
    let cpu = CpuMeter::start(ctx.pid);
    let t_first = now_us();
    let start = tokio::time::Instant::now();
    for i in 0..k {
        if rate > 0.0 {
            sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (ctx, pad, posts_ok, post_err) = (ctx.clone(), pad.clone(), posts_ok.clone(), post_err.clone());
        tokio::spawn(async move {
            let body = format!(
                r#"{{"event":"tick","room":"bench","data":{{"seq":{i},"t":{},"pad":"{pad}"}}}}"#,
                now_us()
            );
            match post(&ctx, "/api/emit", body).await {
                Ok(202) => {
                    posts_ok.fetch_add(1, Relaxed);
                }
                Ok(s) => post_err.fail(format!("POST /api/emit: {s}")),
                Err(e) => post_err.fail(format!("POST /api/emit: {e}")),
            }
            drop(permit);
        });
    }
    let _ = timeout(Duration::from_secs(30), sem.acquire_many(post_in_flight.max(1) as u32)).await;
    let posts_done_us = now_us();
    // Wait for every delivery (bounded: 10 s after the last POST).
    let posted = posts_ok.load(Relaxed);
    let want = (members * posted) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Relaxed) < want && Instant::now() < deadline {
        sleep(Duration::from_millis(5)).await;
    }
    sleep(Duration::from_millis(50)).await; // an extra delivery would arrive now
    let mut out = json!({});
    merge(&mut out, cpu_json(&cpu, received.load(Relaxed), "delivery"));
    let _ = stop_tx.send(true);
    let (mut got_total, mut bad_total, mut dead) = (0u64, 0u64, 0usize);
    let mut incomplete = 0usize;
    for h in handles {
        if let Ok(Some((got, bad, alive))) = h.await {
            got_total += got;
            bad_total += bad;
            dead += usize::from(!alive);
            incomplete += usize::from(got != posted as u64);
        }
    }
    let expected = (members * posted) as u64;
    let last = last_us.load(Relaxed).max(t_first + 1);
    let secs = (last - t_first) as f64 / 1e6;
    let lossless = ready.err.load(Relaxed) == 0
        && post_err.err.load(Relaxed) == 0
        && got_total == expected
        && bad_total == 0
        && members == m;
    merge(
        &mut out,
        json!({
            "scenario": "fanout",
            "members": members,
            "member_errors": ready.err.load(Relaxed),
            "first_error": ready.error(),
            "messages": k,
            "posted": posted,
            "post_errors": post_err.err.load(Relaxed),
            "first_post_error": post_err.error(),
            "size": size,
            "rate": rate,
            "expected": expected,
            "received": got_total,
            "lost": expected.saturating_sub(got_total),
            "extra": got_total.saturating_sub(expected),
            "malformed": bad_total,
            "sockets_incomplete": incomplete,
            "sockets_dropped": dead,
            "post_secs": round((posts_done_us - t_first) as f64 / 1e6),
            "delivery_secs": round(secs),
            "deliveries_per_sec": round(got_total as f64 / secs),
            "latency": hist.lock().unwrap().summary(),
            "lossless": lossless,
        }),
    );
    (out, lossless)
}

// ---------------------------------------------------------------------------------------------
// 4. ack-rtt

#[derive(Default)]
struct AckTally {
    sent: u64,
    ok: u64,
    failed: u64,
    lost: u64,
    first_failure: Option<String>,
}

async fn ack_rtt(ctx: &Arc<Ctx>, n: usize, rate: f64, secs: u64, event: AckEvent, room_size: usize) -> (Value, bool) {
    let ready = Arc::new(Ready::default());
    let hist = Arc::new(Mutex::new(Hist::default()));
    let (go_tx, go_rx) = watch::channel::<Option<tokio::time::Instant>>(None);
    let rate = if rate > 0.0 { rate } else { 1.0 };
    let period = Duration::from_secs_f64((n.max(1) as f64 / rate).max(0.000_05));
    let run_for = Duration::from_secs(secs);
    let ev = match event {
        AckEvent::Typing => "typing",
        AckEvent::SendMessage => "sendMessage",
    };
    let tag = format!("{}", std::process::id());
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (ctx, ready, hist, mut go, tag) = (ctx.clone(), ready.clone(), hist.clone(), go_rx.clone(), tag.clone());
        handles.push(tokio::spawn(async move {
            let mut tally = AckTally::default();
            let user = format!("{}a{i}", ctx.prefix);
            let room = if room_size == 0 || room_size >= n {
                format!("bench-{tag}")
            } else {
                format!("bench-{tag}-{}", i / room_size)
            };
            let mut s = match connect_gated(&ctx, &user).await {
                Ok(s) => s,
                Err(e) => {
                    ready.fail(e);
                    return tally;
                }
            };
            if let Err(e) = join(&mut s, &room).await {
                ready.fail(e);
                return tally;
            }
            ready.ok();
            // Wait for the start signal, still answering pings.
            let start = loop {
                tokio::select! {
                    r = go.changed() => {
                        if r.is_err() { return tally; }
                        let v = *go.borrow_and_update();
                        if let Some(t) = v { break t; }
                    },
                    f = s.ws.next() => if s.handle(f).await.is_err() { return tally; },
                }
            };
            let offset = Duration::from_secs_f64((i as f64 / rate) % period.as_secs_f64());
            let mut tick = tokio::time::interval_at(start + offset, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let end = start + run_for;
            let hard_end = end + Duration::from_secs(5);
            let arg = match event {
                AckEvent::Typing => format!("{{\"roomId\":\"{room}\"}}"),
                AckEvent::SendMessage => format!("{{\"roomId\":\"{room}\",\"text\":\"bench message\"}}"),
            };
            let mut pending: std::collections::HashMap<u64, Instant> = Default::default();
            let mut next_id = 2u64;
            let mut alive = true;
            loop {
                let sending = tokio::time::Instant::now() < end;
                if !sending && pending.is_empty() {
                    break;
                }
                tokio::select! {
                    f = s.ws.next() => match s.handle(f).await {
                        Err(_) => { alive = false; break; }
                        Ok(In::Ack(id, t)) => if let Some(t0) = pending.remove(&id) {
                            if ack_ok(t.as_str()) {
                                tally.ok += 1;
                                hist.lock().unwrap().record(t0.elapsed().as_micros() as u64);
                            } else {
                                tally.failed += 1;
                                tally.first_failure.get_or_insert_with(|| t.as_str().to_string());
                            }
                        },
                        Ok(_) => {}
                    },
                    t = tick.tick(), if sending => {
                        // A tick scheduled at or after the end sends nothing (the wait may
                        // have started before the end).
                        if t >= end {
                            continue;
                        }
                        let id = next_id;
                        next_id += 1;
                        pending.insert(id, Instant::now());
                        tally.sent += 1;
                        if s.send(format!("42{id}[\"{ev}\",{arg}]")).await.is_err() { alive = false; break; }
                    },
                    _ = sleep_until(hard_end) => break,
                }
            }
            tally.lost = pending.len() as u64;
            if alive {
                s.close().await;
            }
            tally
        }));
    }
    ready.wait(n, Duration::from_secs(30 + n as u64 / 500)).await;
    let sockets = ready.ok.load(Relaxed);
    let cpu = CpuMeter::start(ctx.pid);
    let _ = go_tx.send(Some(tokio::time::Instant::now() + Duration::from_millis(100)));
    let mut total = AckTally::default();
    for h in handles {
        if let Ok(t) = h.await {
            total.sent += t.sent;
            total.ok += t.ok;
            total.failed += t.failed;
            total.lost += t.lost;
            if total.first_failure.is_none() {
                total.first_failure = t.first_failure;
            }
        }
    }
    let mut out = json!({});
    merge(&mut out, cpu_json(&cpu, total.sent, "event"));
    let lossless = ready.err.load(Relaxed) == 0 && sockets == n && total.failed == 0 && total.lost == 0;
    merge(
        &mut out,
        json!({
            "scenario": "ack-rtt",
            "event": ev,
            "sockets": sockets,
            "socket_errors": ready.err.load(Relaxed),
            "first_error": ready.error(),
            "room_size": if room_size == 0 || room_size >= n { n } else { room_size },
            "target_rate": rate,
            "secs": secs,
            "sent": total.sent,
            "achieved_rate": round(total.sent as f64 / secs.max(1) as f64),
            "acks_ok": total.ok,
            "acks_failed": total.failed,
            "acks_missing": total.lost,
            "first_failure": total.first_failure,
            "rtt": hist.lock().unwrap().summary(),
            "lossless": lossless,
        }),
    );
    (out, lossless)
}

// ---------------------------------------------------------------------------------------------
// 5. notify-latency

async fn notify_latency(ctx: &Arc<Ctx>, users: usize, rate: f64, secs: u64) -> (Value, bool) {
    let users = users.max(1);
    let ready = Arc::new(Ready::default());
    let hist = Arc::new(Mutex::new(Hist::default()));
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(users);
    for u in 0..users {
        let (ctx, ready, hist, received, mut stop) = (
            ctx.clone(),
            ready.clone(),
            hist.clone(),
            received.clone(),
            stop_rx.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut seqs: Vec<u64> = Vec::new();
            let mut bad = 0u64;
            let user = format!("{}n{u}", ctx.prefix);
            let mut s = match connect_gated(&ctx, &user).await {
                Ok(s) => s,
                Err(e) => {
                    ready.fail(e);
                    return (seqs, bad, false);
                }
            };
            ready.ok();
            let mut alive = true;
            loop {
                tokio::select! {
                    f = s.ws.next() => match s.handle(f).await {
                        Err(_) => { alive = false; break; }
                        Ok(p) => if let Some(txt) = p.is_event("notification") {
                            let now = now_us();
                            match (find_u64(txt, "seq"), find_u64(txt, "t")) {
                                (Some(seq), Some(t)) => {
                                    seqs.push(seq);
                                    hist.lock().unwrap().record(now.saturating_sub(t));
                                }
                                _ => bad += 1,
                            }
                            received.fetch_add(1, Relaxed);
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
            if alive {
                s.close().await;
            }
            (seqs, bad, alive)
        }));
    }
    ready.wait(users, Duration::from_secs(30 + users as u64 / 500)).await;
    let connected = ready.ok.load(Relaxed);
    sleep(Duration::from_millis(200)).await;

    let total = (rate * secs as f64).round() as usize;
    let expected: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); users]));
    let post_err = Arc::new(Ready::default());
    let in_flight = 256usize;
    let sem = Arc::new(Semaphore::new(in_flight));
    let cpu = CpuMeter::start(ctx.pid);
    let start = tokio::time::Instant::now();
    let rate = if rate > 0.0 { rate } else { 1.0 };
    for k in 0..total {
        sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (ctx, expected, post_err) = (ctx.clone(), expected.clone(), post_err.clone());
        tokio::spawn(async move {
            let u = k % users;
            let body = format!(
                r#"{{"userId":"{}n{u}","type":"bench","title":"bench","message":"bench","data":{{"seq":{k},"t":{}}}}}"#,
                ctx.prefix,
                now_us()
            );
            match post(&ctx, "/api/notifications", body).await {
                Ok(201) => expected.lock().unwrap()[u].push(k as u64),
                Ok(s) => post_err.fail(format!("POST /api/notifications: {s}")),
                Err(e) => post_err.fail(format!("POST /api/notifications: {e}")),
            }
            drop(permit);
        });
    }
    let _ = timeout(Duration::from_secs(30), sem.acquire_many(in_flight as u32)).await;
    let posted: usize = expected.lock().unwrap().iter().map(|v| v.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (received.load(Relaxed) as usize) < posted && Instant::now() < deadline {
        sleep(Duration::from_millis(5)).await;
    }
    sleep(Duration::from_millis(100)).await; // a duplicate would arrive now
    let mut out = json!({});
    merge(&mut out, cpu_json(&cpu, posted as u64, "notification"));
    let _ = stop_tx.send(true);
    let (mut missing, mut dup, mut unexpected, mut bad_total, mut got_total) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let expected = expected.lock().unwrap().clone();
    for (u, h) in handles.into_iter().enumerate() {
        let Ok((mut seqs, bad, _alive)) = h.await else { continue };
        bad_total += bad;
        got_total += seqs.len() as u64;
        seqs.sort_unstable();
        let before = seqs.len();
        seqs.dedup();
        dup += (before - seqs.len()) as u64;
        let mut exp = expected[u].clone();
        exp.sort_unstable();
        let (mut i, mut j) = (0, 0);
        while i < exp.len() || j < seqs.len() {
            match (exp.get(i), seqs.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    missing += 1;
                    i += 1;
                }
                (Some(_), None) => {
                    missing += 1;
                    i += 1;
                }
                _ => {
                    unexpected += 1;
                    j += 1;
                }
            }
        }
    }
    let lossless = ready.err.load(Relaxed) == 0
        && connected == users
        && post_err.err.load(Relaxed) == 0
        && missing == 0
        && dup == 0
        && unexpected == 0
        && bad_total == 0;
    merge(
        &mut out,
        json!({
            "scenario": "notify-latency",
            "users": connected,
            "socket_errors": ready.err.load(Relaxed),
            "first_error": ready.error(),
            "target_rate": rate,
            "secs": secs,
            "posted": posted,
            "post_errors": post_err.err.load(Relaxed),
            "first_post_error": post_err.error(),
            "received": got_total,
            "missing": missing,
            "duplicates": dup,
            "unexpected": unexpected,
            "malformed": bad_total,
            "latency": hist.lock().unwrap().summary(),
            "lossless": lossless,
        }),
    );
    (out, lossless)
}
