//! The interleaved harness: every implementation of one operation is
//! measured in turn, round after round, in thread CPU time, and each one's
//! median over the rounds is kept. On a shared, noisy machine a slow drift
//! (another job starting, frequency changes) then shifts every row of a
//! round alike instead of favouring whichever row criterion ran first, so
//! the ratios between rows are what can be trusted.

use std::time::Duration;

use cpu_time::ThreadTime;

/// One operation to measure: a name and a closure that does it once.
pub type Op<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// How long one batch of one operation runs, in thread CPU time.
pub const BATCH: Duration = Duration::from_millis(4);

/// Measures `ops` in `rounds` interleaved rounds (the order rotates every
/// round) and returns each op's median time per call, in nanoseconds.
pub fn measure(ops: &mut [Op<'_>], rounds: usize) -> Vec<f64> {
    let iterations: Vec<u64> = ops.iter_mut().map(|(_, op)| calibrate(op)).collect();
    let mut samples = vec![Vec::with_capacity(rounds); ops.len()];
    for round in 0..rounds {
        for k in 0..ops.len() {
            let i = (k + round) % ops.len();
            let start = ThreadTime::now();
            for _ in 0..iterations[i] {
                (ops[i].1)();
            }
            #[allow(clippy::cast_precision_loss)]
            samples[i].push(start.elapsed().as_nanos() as f64 / iterations[i] as f64);
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

/// Iterations that make one batch last about [`BATCH`] (warm-up included).
fn calibrate(op: &mut Box<dyn FnMut() + '_>) -> u64 {
    op();
    let mut n = 1u64;
    loop {
        let start = ThreadTime::now();
        for _ in 0..n {
            op();
        }
        let elapsed = start.elapsed();
        if elapsed >= BATCH / 2 || n >= 1 << 24 {
            let per_call = elapsed.as_nanos().max(1) / u128::from(n);
            return u64::try_from((BATCH.as_nanos() / per_call.max(1)).max(1)).unwrap_or(1);
        }
        n *= 2;
    }
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The `p` quantile (0.0 to 1.0, nearest rank) of sorted durations, in
/// milliseconds; 0 for none.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn measure_ranks_a_slower_op_slower() {
        let mut fast = 0u64;
        let mut slow = 0u64;
        let mut ops: Vec<Op<'_>> = vec![
            (
                "fast",
                Box::new(|| fast = std::hint::black_box(fast.wrapping_add(1))),
            ),
            (
                "slow",
                Box::new(|| {
                    for _ in 0..200 {
                        slow = std::hint::black_box(slow.wrapping_mul(31).wrapping_add(7));
                    }
                }),
            ),
        ];
        let times = measure(&mut ops, 3);
        assert!(times[1] > times[0] * 5.0, "{times:?}");
    }

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let ms = |n| std::time::Duration::from_millis(n);
        let sorted = [ms(1), ms(2), ms(3), ms(4), ms(100)];
        assert!((percentile_ms(&sorted, 0.5) - 3.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 1.0) - 100.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 0.0) - 1.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 0.5).abs() < 1e-9);
    }
}
