//! Latency histogram (microseconds, ~0.1 % precision) and /proc readers.

use serde_json::{Value, json};

/// Log-linear histogram: exact below 2048 µs, then 1024 sub-buckets per power of two.
#[derive(Default)]
pub struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
    sum: u128,
}

const LINEAR: u64 = 2048;
const SUB: u64 = 1024;

impl Hist {
    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as u64; // >= 11
        let shift = e - 10;
        (LINEAR + (e - 11) * SUB + ((v >> shift) - SUB)) as usize
    }

    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let e = (i - LINEAR) / SUB + 11;
        let m = (i - LINEAR) % SUB + SUB;
        // upper edge of the bucket, so percentiles never under-report
        ((m + 1) << (e - 10)) - 1
    }

    pub fn record(&mut self, us: u64) {
        let i = Self::index(us);
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += us as u128;
        self.max = self.max.max(us);
    }

    /// q in 0..=1, in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    /// `{ count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms }`
    pub fn summary(&self) -> Value {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        json!({
            "count": self.count,
            "p50_ms": ms(self.quantile(0.50)),
            "p90_ms": ms(self.quantile(0.90)),
            "p99_ms": ms(self.quantile(0.99)),
            "max_ms": ms(self.max),
            "mean_ms": if self.count == 0 { 0.0 } else { ms((self.sum / self.count as u128) as u64) },
        })
    }
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in milliseconds (assumes CLK_TCK = 100, as on Linux/x86 and arm64).
pub fn cpu_ms(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ut + st) * 10)
}

/// CPU usage of a process between two `cpu_ms` readings.
pub struct CpuMeter {
    pid: Option<String>,
    server0: Option<u64>,
    self0: Option<u64>,
    t0: std::time::Instant,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        let pid = pid.map(|p| p.to_string());
        CpuMeter {
            server0: pid.as_deref().and_then(cpu_ms),
            self0: cpu_ms("self"),
            pid,
            t0: std::time::Instant::now(),
        }
    }

    /// `(server_cpu_ms, loadgen_cpu_ms, wall_ms)`
    pub fn stop(&self) -> (Option<u64>, Option<u64>, u64) {
        let server = match (&self.pid, self.server0) {
            (Some(p), Some(a)) => cpu_ms(p).map(|b| b.saturating_sub(a)),
            _ => None,
        };
        let me = self.self0.and_then(|a| cpu_ms("self").map(|b| b.saturating_sub(a)));
        (server, me, self.t0.elapsed().as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_round_trip() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((50_000..=50_100).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 100_000);
        for v in [0u64, 1, 2047, 2048, 4095, 4096, 1 << 30] {
            let i = Hist::index(v);
            assert!(Hist::value(i) >= v, "{v}");
        }
    }
}
