//! Waiting for what must happen, without a timed assertion: a test polls
//! until the outcome it wants is there, and fails only when it has not come
//! after [`PATIENCE`], far past any healthy run on a loaded machine. How
//! fast it comes is a benchmark's question (`bench/`), not a test's.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for anything that must happen.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Between two looks.
const POLL: Duration = Duration::from_millis(20);

/// Calls `attempt` until it gives a value, every 20 ms, for up to
/// [`PATIENCE`] of wall time (a paused tokio clock does not shorten it);
/// then panics naming `what`. The last attempt's answer is what counts, so
/// `attempt` should return `None` only for "not yet", and assert on
/// anything that is wrong at any time.
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(done) = attempt().await {
            return done;
        }
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_given() {
        let mut n = 0;
        let got = eventually("the third look", || {
            n += 1;
            let now = n;
            async move { (now == 3).then_some(now) }
        })
        .await;
        assert_eq!(got, 3);
    }
}
