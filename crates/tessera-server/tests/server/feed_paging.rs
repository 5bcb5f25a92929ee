//! Paging of the deny-list feed (issue 12, "The suite itself"): after a
//! mass revoke a follower reads the feed page by page with `limit`, and
//! a wrong next sequence number or a wrong `more` would drop revocations
//! silently; `wait` holds an up-to-date request until something is listed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_jose::UnixTime;
use tessera_server::test_util::JtiRevocation;
use tessera_testkit::eventually;

use crate::common::{backends, oauth_error, TestServer};
use crate::revoke::{claims, revoke};

/// Entries listed: not a multiple of the page sizes read, so the last page
/// is a short one.
const LISTED: usize = 2050;

/// `GET /revocations` with `query`, as the server's follower client.
async fn get(s: &TestServer, query: &str) -> reqwest::Response {
    let (id, secret) = s.follower().await;
    s.http
        .get(s.url(&format!("/revocations?{query}")))
        .basic_auth(id, Some(secret))
        .send()
        .await
        .unwrap()
}

async fn page(s: &TestServer, query: &str) -> Value {
    let resp = get(s, query).await;
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

/// Lists `n` jtis straight in the store (the HTTP path of one revocation
/// is covered in revoke.rs): `j-0`, `j-1`...
async fn list_many(s: &TestServer, n: usize) -> HashSet<String> {
    let store = s.running.store();
    let now = s.now();
    let mut jtis = HashSet::new();
    for i in 0..n {
        let jti = format!("j-{i}");
        store
            .revoke_jti(&JtiRevocation {
                jti: &jti,
                client_id: "mass",
                expires_at: UnixTime::from_secs(now + 3600),
                now: UnixTime::from_secs(now),
            })
            .await
            .unwrap();
        jtis.insert(jti);
    }
    jtis
}

/// Checks a page read after `since` with `limit` on a feed at `latest`:
/// its entries follow `since` one by one (a follower's next `since` is the
/// last one's `seq`). Returns them (seq, jti) and the page's `more`.
fn check_page(p: &Value, since: i64, limit: usize, latest: i64) -> (Vec<(i64, String)>, bool) {
    let entries = p["entries"].as_array().unwrap();
    assert!(entries.len() <= limit, "a page of {}", entries.len());
    assert_eq!(p["seq"], latest, "the feed's latest number");
    assert_eq!(p["snapshot"], false);
    let mut prev = since;
    let mut read = Vec::new();
    for e in entries {
        let seq = e["seq"].as_i64().unwrap();
        assert_eq!(seq, prev + 1, "no gap and no repeat after {prev}");
        prev = seq;
        read.push((seq, e["jti"].as_str().unwrap().to_owned()));
    }
    (read, p["more"].as_bool().unwrap())
}

#[tokio::test]
async fn a_mass_revoke_is_read_page_by_page_with_nothing_dropped_or_repeated() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let listed = list_many(&s, LISTED).await;
        let latest = i64::try_from(LISTED).unwrap();
        for limit in [100usize, 1000, 10_000] {
            let mut since = 0;
            let mut seen = HashSet::new();
            let mut pages = 0;
            loop {
                let p = page(&s, &format!("since={since}&limit={limit}")).await;
                pages += 1;
                let (read, more) = check_page(&p, since, limit, latest);
                // Full pages say more; the short last one does not.
                assert_eq!(more, read.len() == limit, "{} limit {limit}", b.name);
                for (_, jti) in &read {
                    assert!(seen.insert(jti.clone()), "{jti} listed twice");
                }
                if let Some((seq, _)) = read.last() {
                    since = *seq;
                }
                if !more {
                    break;
                }
                assert!(pages <= LISTED, "the feed never ends");
            }
            assert_eq!(seen, listed, "{} limit {limit}: every jti once", b.name);
            assert_eq!(since, latest);
            assert_eq!(pages, LISTED.div_ceil(limit), "{} limit {limit}", b.name);
        }
        // Exactly a page's worth left: that page says more, and the one
        // after it is empty and ends the feed.
        let p = page(&s, &format!("since={}&limit=50", latest - 50)).await;
        let (read, more) = check_page(&p, latest - 50, 50, latest);
        assert_eq!((read.len(), more), (50, true), "{}", b.name);
        let p = page(&s, &format!("since={latest}&limit=50")).await;
        assert_eq!(
            p,
            json!({"entries": [], "more": false, "seq": latest, "snapshot": false}),
            "{}",
            b.name
        );
        // Without `limit`, a page is 1000 entries.
        let p = page(&s, "since=0").await;
        assert_eq!(p["entries"].as_array().unwrap().len(), 1000);
        assert_eq!(p["more"], true);
        s.stop().await;
    }
}

#[tokio::test]
async fn limit_and_wait_out_of_range_are_refused() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        for query in [
            "since=0&limit=0",
            "since=0&limit=-1",
            "since=0&limit=10001",
            "since=0&limit=ten",
            "since=0&limit=",
            "since=0&wait=31",
            "since=0&wait=-1",
            "since=0&wait=1.5",
            "since=0&wait=soon",
        ] {
            let resp = get(&s, query).await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_request".into()),
                "{} {query}",
                b.name
            );
        }
        // The bounds themselves are taken.
        for query in ["since=0&limit=1", "since=0&limit=10000", "since=0&wait=0"] {
            assert_eq!(get(&s, query).await.status(), 200, "{} {query}", b.name);
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn a_long_poll_returns_when_a_token_is_revoked_and_empty_after_its_wait() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        list_many(&s, 3).await;
        // Nothing new: held for the wait, then an empty page.
        let started = Instant::now();
        let p = page(&s, "since=3&wait=1").await;
        let took = started.elapsed();
        assert_eq!(
            p,
            json!({"entries": [], "more": false, "seq": 3, "snapshot": false}),
            "{}",
            b.name
        );
        assert!(
            took >= Duration::from_millis(900),
            "{} held {took:?}",
            b.name
        );
        assert!(took < Duration::from_secs(15), "{} held {took:?}", b.name);

        // A revocation during the wait ends it with the new entry.
        let (id, secret) = s.basic_client(json!({})).await;
        let token = s.token(&id, &secret).await;
        let jti = claims(&token)["jti"].as_str().unwrap().to_owned();
        let started = Instant::now();
        let waiting = page(&s, "since=3&wait=30");
        let revoking = async {
            // Once the server holds the request, not before.
            eventually("the long poll is held", || async {
                (s.running.feed_readers_held() == 1).then_some(())
            })
            .await;
            assert_eq!(
                revoke(&s, &id, &secret, &[("token", &token)])
                    .await
                    .status(),
                200
            );
        };
        let (p, ()) = tokio::join!(waiting, revoking);
        let took = started.elapsed();
        // The revocation ended the wait, not its 30 s.
        assert!(took < Duration::from_secs(20), "{} held {took:?}", b.name);
        assert_eq!(s.running.feed_readers_held(), 0, "{}", b.name);
        assert_eq!(p["seq"], 4, "{}", b.name);
        assert_eq!(p["entries"][0]["jti"], jti.as_str(), "{}", b.name);
        assert_eq!(p["entries"][0]["seq"], 4);
        assert_eq!(p["more"], false);
        s.stop().await;
    }
}
