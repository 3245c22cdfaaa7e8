//! stallprobe SECONDS [THRESHOLD_US]: spins on the clock for SECONDS and reports every gap longer
//! than THRESHOLD_US (default 200) between two consecutive readings — time this thread was not
//! running although it never blocked (another process, the kernel or the hypervisor had its
//! core). Prints one CSV line: gaps, lost_ms, lost_share_pct, max_ms, gaps_over_1ms,
//! lost_in_gaps_over_1ms_ms.
//! A latency figure from a server on the same core cannot be better than what these stalls
//! allow: a request that arrives during a gap waits for its end.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first().and_then(|s| s.parse::<f64>().ok()),
        args.get(1).map_or(Some(200), |s| s.parse::<u64>().ok()),
    );
    let (Some(seconds), Some(threshold_us)) = parsed else {
        eprintln!("usage: stallprobe SECONDS [THRESHOLD_US]");
        std::process::exit(2);
    };
    let gaps = probe(
        Duration::from_secs_f64(seconds),
        Duration::from_micros(threshold_us),
        Instant::now,
    );
    let s = Summary::of(&gaps, Duration::from_secs_f64(seconds));
    println!(
        "{},{:.1},{:.3},{:.2},{},{:.1}",
        s.gaps, s.lost_ms, s.lost_pct, s.max_ms, s.over_1ms, s.lost_over_1ms_ms
    );
}

/// Reads `clock` for `run`, returning every gap over `threshold` between two readings.
fn probe(run: Duration, threshold: Duration, mut clock: impl FnMut() -> Instant) -> Vec<Duration> {
    let start = clock();
    let mut last = start;
    let mut gaps = Vec::new();
    loop {
        let now = clock();
        let gap = now - last;
        if gap > threshold {
            gaps.push(gap);
        }
        last = now;
        if now - start >= run {
            return gaps;
        }
    }
}

#[derive(Debug, PartialEq)]
struct Summary {
    gaps: usize,
    lost_ms: f64,
    lost_pct: f64,
    max_ms: f64,
    over_1ms: usize,
    lost_over_1ms_ms: f64,
}

impl Summary {
    fn of(gaps: &[Duration], run: Duration) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let lost: Duration = gaps.iter().sum();
        let long: Vec<&Duration> = gaps
            .iter()
            .filter(|g| **g > Duration::from_millis(1))
            .collect();
        Summary {
            gaps: gaps.len(),
            lost_ms: ms(lost),
            lost_pct: 100.0 * lost.as_secs_f64() / run.as_secs_f64(),
            max_ms: gaps.iter().max().map_or(0.0, |g| ms(*g)),
            over_1ms: long.len(),
            lost_over_1ms_ms: long.iter().map(|g| ms(**g)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_gaps_and_the_long_ones() {
        let us = Duration::from_micros;
        let s = Summary::of(&[us(300), us(2_500), us(1_200)], Duration::from_secs(1));
        assert_eq!(s.gaps, 3);
        assert!((s.lost_ms - 4.0).abs() < 1e-9);
        assert!((s.lost_pct - 0.4).abs() < 1e-9);
        assert!((s.max_ms - 2.5).abs() < 1e-9);
        assert_eq!(s.over_1ms, 2);
        assert!((s.lost_over_1ms_ms - 3.7).abs() < 1e-9);
        assert_eq!(Summary::of(&[], Duration::from_secs(1)).max_ms, 0.0);
    }

    #[test]
    fn the_probe_reports_the_gaps_its_clock_shows() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        // Readings 10 us apart, except a 900 us and a 3 ms jump; the run lasts 5 ms.
        let mut at = t0;
        let mut step = 0;
        let gaps = probe(us(5_000), us(200), || {
            step += 1;
            at += match step {
                50 => us(900),
                80 => us(3_000),
                _ => us(10),
            };
            at
        });
        assert_eq!(gaps, vec![us(900), us(3_000)]);
    }
}
