//! A hostile deny-list feed that streams garbage, chunked, with no
//! `Content-Length`, for as long as anyone reads: the follower cuts every
//! answer at its page limit, and the process stays under 64 MiB of
//! resident memory while well over that streams through. Alone in its own
//! test binary, so that the process's peak (VmHWM) is this test's.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use tessera_verify::{DenyList, FeedOptions};

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_streaming_garbage_is_cut_at_the_page_limit_and_memory_stays_bounded() {
    const MIB: u64 = 1 << 20;
    // The feed: 64 KiB chunks of garbage, forever, counted as they go.
    let streamed = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (s, r) = (Arc::clone(&streamed), Arc::clone(&requests));
    let app = axum::Router::new().route(
        "/revocations",
        axum::routing::get(move || {
            let s = Arc::clone(&s);
            r.fetch_add(1, Ordering::SeqCst);
            async move {
                static GARBAGE: [u8; 64 * 1024] = [b'x'; 64 * 1024];
                let stream = futures_util::stream::repeat_with(move || {
                    s.fetch_add(GARBAGE.len() as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(Bytes::from_static(&GARBAGE))
                });
                Body::from_stream(stream)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/revocations", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let before = status_kib("VmRSS:");
    // Quick retries, so that many answers stream through in the window.
    let options = FeedOptions {
        error_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        ..FeedOptions::default()
    };
    let started = std::time::Instant::now();
    let list = DenyList::follow(&url, "tc_gateway", "tcs_secret", &options)
        .await
        .unwrap();
    // Returned at the first cut answer, long before its catch-up time
    // (the 10 s default) could have ended it.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "follow returned after {:?}",
        started.elapsed()
    );
    assert!(!list.caught_up(), "nothing was read to an end");
    assert!(list.is_empty());

    // Keep following until 256 MiB have streamed (four times the bound).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut peak_rss = 0;
    while streamed.load(Ordering::Relaxed) < 256 * MIB {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} MiB streamed",
            streamed.load(Ordering::Relaxed) / MIB
        );
        peak_rss = peak_rss.max(status_kib("VmRSS:"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answers = requests.load(Ordering::SeqCst);
    let failures = list.failures.load(Ordering::Relaxed);
    let total = streamed.load(Ordering::Relaxed);
    let hwm = status_kib("VmHWM:");
    eprintln!(
        "streamed {} MiB in {answers} answers ({failures} cut); RSS before {} KiB, peak sampled {peak_rss} KiB, VmHWM {hwm} KiB",
        total / MIB,
        before
    );
    // Every answer was cut near the page limit (plus what the sockets
    // buffer), not read to the end.
    assert!(
        answers >= 2 && failures + 1 >= answers,
        "{answers} answers, {failures} failures"
    );
    assert!(
        total / answers < 4 * MIB + 16 * MIB,
        "{} MiB per answer",
        total / answers / MIB
    );
    assert!(hwm < 64 * 1024, "VmHWM {hwm} KiB is over 64 MiB");
}
