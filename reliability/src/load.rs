//! The load generator: `concurrency` workers run an operation back to
//! back (closed loop) or paced to a target rate (open loop: a tick the
//! workers cannot take is counted as shed, never queued), until the
//! duration or the operation count runs out, whichever comes first.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How much load, for how long.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub duration: Duration,
    pub max_ops: u64,
    pub concurrency: usize,
    /// Operations per second in all; `None`: as fast as the workers go.
    pub rate: Option<f64>,
}

/// Latencies of finished operations, in microseconds: the whole run and
/// the current window (for figures sampled during a run).
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    all: Mutex<Vec<u32>>,
    window: Mutex<Vec<u32>>,
}

impl Latencies {
    fn record(&self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        lock(&self.all).push(us);
        lock(&self.window).push(us);
    }

    /// The window's percentiles, and a new window.
    pub(crate) fn take_window(&self) -> Percentiles {
        let mut w = std::mem::take(&mut *lock(&self.window));
        Percentiles::of(&mut w)
    }

    pub(crate) fn total(&self) -> Percentiles {
        let mut all = lock(&self.all).clone();
        Percentiles::of(&mut all)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(us: &mut [u32]) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_unstable();
        let at = |q: f64| {
            let i = ((us.len() as f64 - 1.0) * q).round() as usize;
            f64::from(us[i]) / 1000.0
        };
        Self {
            count: us.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub ops: u64,
    pub ok: u64,
    pub failed: u64,
    /// Ticks of an open-loop run that found every worker busy.
    pub shed: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Percentiles,
}

/// Counters shared by the workers while a run goes on.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub ops: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub shed: AtomicU64,
    pub latencies: Latencies,
}

/// Runs `op(n)` (its result: succeeded) under `spec`, with `live` counting.
pub(crate) async fn run<F, Fut>(spec: &Spec, live: Arc<Live>, op: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + spec.duration;
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    // Open loop: a ticker hands out permits; a tick with no free worker is shed.
    let permits = spec.rate.map(|rate| {
        let (tx, rx) = async_channel(spec.concurrency.max(1));
        let live = Arc::clone(&live);
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < deadline {
                tick.tick().await;
                if tx.try_send(()).is_err() {
                    live.shed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        rx
    });
    let mut workers = Vec::new();
    for _ in 0..spec.concurrency {
        let (op, next, live, permits) = (
            Arc::clone(&op),
            Arc::clone(&next),
            Arc::clone(&live),
            permits.clone(),
        );
        let max_ops = spec.max_ops;
        workers.push(tokio::spawn(async move {
            loop {
                if let Some(permits) = &permits {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, permits.lock().await.recv()).await {
                        Ok(Some(())) => {}
                        _ => break,
                    }
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_ops || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let ok = op(n).await;
                live.latencies.record(t.elapsed());
                live.ops.fetch_add(1, Ordering::Relaxed);
                if ok {
                    live.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    live.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ops = live.ops.load(Ordering::Relaxed);
    Report {
        ops,
        ok: live.ok.load(Ordering::Relaxed),
        failed: live.failed.load(Ordering::Relaxed),
        shed: live.shed.load(Ordering::Relaxed),
        seconds,
        per_second: ops as f64 / seconds.max(1e-9),
        latency: live.latencies.total(),
    }
}

/// A bounded channel whose receiver the workers share.
type Permits = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<()>>>;

fn async_channel(capacity: usize) -> (tokio::sync::mpsc::Sender<()>, Permits) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_stops_at_its_operation_count_and_counts_failures() {
        let spec = Spec {
            duration: Duration::from_secs(60),
            max_ops: 100,
            concurrency: 4,
            rate: None,
        };
        let report = run(
            &spec,
            Arc::new(Live::default()),
            |n| async move { n % 10 != 0 },
        )
        .await;
        assert_eq!(report.ops, 100);
        assert_eq!(report.failed, 10);
        assert_eq!(report.ok, 90);
        assert_eq!(report.latency.count, 100);
    }

    #[tokio::test]
    async fn an_open_loop_run_sheds_the_ticks_no_worker_can_take() {
        // One worker, each operation 50 ms, ticks every 5 ms for 300 ms:
        // at most about 6 operations run and most ticks are shed.
        let spec = Spec {
            duration: Duration::from_millis(300),
            max_ops: u64::MAX,
            concurrency: 1,
            rate: Some(200.0),
        };
        let report = run(&spec, Arc::new(Live::default()), |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            true
        })
        .await;
        assert!(report.ops <= 8, "{report:?}");
        assert!(report.shed > report.ops, "{report:?}");
    }

    #[test]
    fn percentiles_come_from_the_sorted_samples() {
        let mut us: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut us);
        assert_eq!(p.count, 100);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(p.p99_ms, 99.0);
        assert!((p.p50_ms - 50.0).abs() <= 1.0, "{p:?}");
    }
}
