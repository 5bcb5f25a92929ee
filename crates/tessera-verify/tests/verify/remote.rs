//! The remote key set: rotation, unknown-kid storms, outages, garbage.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{Algorithm, ErrorKind, Signer, SigningKey};
use tessera_verify::rule::{self, Floors};
use tessera_verify::{RemoteOptions, Verifier};

use tessera_testkit::eventually;

use crate::keyserver::{public, signer, token, KeyServer, Mode, AUD, ISS};

fn fast() -> RemoteOptions {
    RemoteOptions {
        min_cache_ttl: Duration::from_millis(200),
        default_max_age: Duration::from_millis(200),
        ..RemoteOptions::default()
    }
}

async fn verifier(url: &str, options: RemoteOptions) -> Verifier {
    Verifier::from_jwks_url(url)
        .issuer(ISS)
        .audience(AUD)
        .remote_options(options)
        .build()
        .await
        .unwrap()
}

/// Until `f` holds, for up to the testkit's patience.
async fn until(f: impl Fn() -> bool, what: &str) {
    eventually(what, || async { f().then_some(()) }).await;
}

#[tokio::test]
async fn policy_of_the_core_applies() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = verifier(&ks.url, RemoteOptions::default()).await;
    let ok = v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
    assert_eq!(ok.claims["sub"], "svc");
    // typ: at+jwt and JWT by default, nothing else.
    let jwt = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwt = Signer::new(jwt.with_kid(a.key().kid().unwrap().to_owned())).typ("JWT");
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    let other = Signer::new(other.with_kid(a.key().kid().unwrap().to_owned())).typ("dpop+jwt");
    // (Same kid, other key: typ is checked before the signature.)
    assert_eq!(
        v.verify::<Value>(&token(&jwt, json!({})))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::BadSignature
    );
    assert_eq!(
        v.verify::<Value>(&token(&other, json!({})))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TypeMismatch
    );
    let cases = [
        (
            token(&a, json!({"iss": "https://other"})),
            ErrorKind::IssuerMismatch,
        ),
        (
            token(&a, json!({"aud": "other-api"})),
            ErrorKind::AudienceMismatch,
        ),
        (token(&a, json!({"exp": 1000})), ErrorKind::Expired),
    ];
    for (t, kind) in cases {
        assert_eq!(v.verify::<Value>(&t).await.unwrap_err().kind(), kind);
    }
}

#[tokio::test]
async fn a_rotation_while_serving_rejects_nothing_valid() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = Arc::new(verifier(&ks.url, RemoteOptions::default()).await);
    let before = ks.count();
    // The authority pre-publishes B, then signs with it: the cached set
    // (fresh for the 60 s minimum) lacks B, so the first B token fetches once.
    let b = signer(Algorithm::ES256);
    ks.set(|i| i.keys.push(public(&b)));
    for _ in 0..20 {
        v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
        v.verify::<Value>(&token(&b, json!({}))).await.unwrap();
    }
    assert_eq!(ks.count() - before, 1, "one fetch for the new kid");
    // A is compromised: gone from the JWKS; its tokens fail after the next refresh.
    ks.set(|i| i.keys.retain(|k| k["kid"] != a.key().kid().unwrap()));
    let v = verifier(&ks.url, fast()).await;
    v.verify::<Value>(&token(&b, json!({}))).await.unwrap();
    let c = signer(Algorithm::ES256);
    ks.set(|i| i.keys.push(public(&c)));
    until(
        || v.remote().unwrap().stats().fetches.load(Ordering::SeqCst) >= 3,
        "background refreshes",
    )
    .await;
    assert_eq!(
        v.verify::<Value>(&token(&a, json!({})))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UnknownKid
    );
    v.verify::<Value>(&token(&c, json!({}))).await.unwrap();
}

#[tokio::test]
async fn unknown_kid_storm_fetches_at_most_once_per_cooldown() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = Arc::new(verifier(&ks.url, RemoteOptions::default()).await);
    let before = ks.count();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let v = Arc::clone(&v);
        // A fresh key: its thumbprint kid is unknown to the authority.
        let s = signer(Algorithm::ES256);
        tasks.push(tokio::spawn(async move {
            v.verify::<Value>(&token(&s, json!({}))).await.map(|_| ())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err().kind(), ErrorKind::UnknownKid);
    }
    assert_eq!(ks.count() - before, 1, "1,000 unknown kids, one fetch");
    assert!(
        v.remote()
            .unwrap()
            .stats()
            .cooldown_rejections
            .load(Ordering::SeqCst)
            >= 998
    );
    // The known key still verifies meanwhile.
    v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
}

#[tokio::test]
async fn an_outage_serves_the_stale_set_and_recovery_is_picked_up() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = verifier(&ks.url, fast()).await;
    ks.set(|i| i.mode = Mode::Down);
    let stats = v.remote().unwrap().stats();
    until(
        || stats.failures.load(Ordering::SeqCst) >= 1,
        "a failed refresh",
    )
    .await;
    // Past the cache lifetime, the last good set still verifies (every
    // time: before it too).
    let v = &v;
    eventually("a verification with the stale set", || async {
        v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
        (stats.stale_uses.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    // The authority comes back with a new key: picked up without a restart.
    let b = signer(Algorithm::ES256);
    ks.set(|i| {
        i.mode = Mode::Normal;
        i.keys.push(public(&b));
    });
    let fetches = stats.fetches.load(Ordering::SeqCst);
    until(
        || stats.fetches.load(Ordering::SeqCst) > fetches + 1,
        "refresh after recovery",
    )
    .await;
    v.verify::<Value>(&token(&b, json!({}))).await.unwrap();
}

#[tokio::test]
async fn stale_if_error_has_a_limit() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let options = RemoteOptions {
        stale_if_error: Duration::from_millis(400),
        ..fast()
    };
    let v = &verifier(&ks.url, options).await;
    ks.set(|i| i.mode = Mode::Down);
    // Served stale for a while; then, past the limit, the set is gone and
    // the token's kid is unknown (never another refusal).
    eventually("the stale set's limit", || async {
        match v.verify::<Value>(&token(&a, json!({}))).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::UnknownKid, "{e}");
                Some(())
            }
        }
    })
    .await;
}

#[tokio::test]
async fn garbage_too_large_and_slow_answers_change_nothing() {
    for mode in [Mode::Garbage, Mode::TooLarge, Mode::Slow] {
        let a = signer(Algorithm::ES256);
        let ks = KeyServer::start(&[&a]).await;
        let options = RemoteOptions {
            timeout: Duration::from_millis(300),
            ..fast()
        };
        let v = verifier(&ks.url, options).await;
        ks.set(|i| i.mode = mode);
        let stats = v.remote().unwrap().stats();
        until(
            || stats.failures.load(Ordering::SeqCst) >= 1,
            "a failed refresh",
        )
        .await;
        v.verify::<Value>(&token(&a, json!({})))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        // An unknown kid during the bad answers: refused, the good set kept.
        let b = signer(Algorithm::ES256);
        assert_eq!(
            v.verify::<Value>(&token(&b, json!({})))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownKid
        );
        v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
    }
}

#[tokio::test]
async fn revalidation_uses_if_none_match() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = verifier(&ks.url, fast()).await;
    let stats = v.remote().unwrap().stats();
    until(
        || stats.not_modified.load(Ordering::SeqCst) >= 2,
        "304 revalidations",
    )
    .await;
    v.verify::<Value>(&token(&a, json!({}))).await.unwrap();
}

#[tokio::test]
async fn building_refuses_bad_sources() {
    for url in [
        "http://auth.example.com/jwks",
        "ftp://127.0.0.1/jwks",
        "nonsense",
    ] {
        assert!(Verifier::from_jwks_url(url).build().await.is_err(), "{url}");
    }
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    ks.set(|i| i.mode = Mode::Garbage);
    assert!(Verifier::from_jwks_url(&ks.url).build().await.is_err());
    assert!(Verifier::from_jwks("{}").build().await.is_err());
    assert!(Verifier::from_jwks("{\"keys\":[]}").build().await.is_err());
}

#[tokio::test]
async fn the_token_cache_never_outlives_exp_nor_a_removed_key() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let v = Verifier::from_jwks_url(&ks.url)
        .issuer(ISS)
        .audience(AUD)
        .leeway(Duration::ZERO)
        .cache(1000)
        .remote_options(fast())
        .build()
        .await
        .unwrap();
    let now = tessera_jose::UnixTime::now().secs();
    let short = token(&a, json!({"exp": now + 2}));
    let first = v.verify_token(&short).await.unwrap();
    let again = v.verify_token(&short).await.unwrap();
    assert!(
        Arc::ptr_eq(&first.claims, &again.claims),
        "second check served from the cache"
    );
    // Served (from the cache) until its exp, then refused as expired.
    let (v, short) = (&v, &short);
    eventually("the cached token expires", || async move {
        match v.verify_token(short).await {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Expired, "{e}");
                Some(())
            }
        }
    })
    .await;

    // A key leaves the JWKS: its cached tokens go with it at the next refresh.
    let long = token(&a, json!({}));
    v.verify_token(&long).await.unwrap();
    let b = signer(Algorithm::ES256);
    ks.set(|i| i.keys = vec![public(&b)]);
    let stats = v.remote().unwrap().stats();
    let fetches = stats.fetches.load(Ordering::SeqCst);
    until(
        || stats.fetches.load(Ordering::SeqCst) > fetches + 1,
        "a refresh",
    )
    .await;
    assert_eq!(
        v.verify_token(&long).await.unwrap_err().kind(),
        ErrorKind::UnknownKid
    );
}

/// Floors for these tests: short enough to watch, far from each other.
fn floors(min_cache_ttl: Duration, unknown_kid_cooldown: Duration) -> Floors {
    Floors {
        min_cache_ttl,
        unknown_kid_cooldown,
    }
}

#[tokio::test]
async fn the_configured_cache_floor_sets_the_key_set_s_lifetime() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    // max-age=0: the floor decides, the configured one or the default.
    let v = Verifier::from_jwks_url(&ks.url)
        .min_cache_ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let remote = v.remote().unwrap();
    assert_eq!(remote.cache_lifetime(), Duration::from_secs(2));
    assert_eq!(remote.floors().min_cache_ttl, Duration::from_secs(2));
    let default = Verifier::from_jwks_url(&ks.url).build().await.unwrap();
    assert_eq!(
        default.remote().unwrap().cache_lifetime(),
        rule::DEFAULT_MIN_CACHE_TTL
    );
    // A max-age above the floor is honoured as served.
    ks.set(|i| i.max_age = 7);
    let v = Verifier::from_jwks_url(&ks.url)
        .floors(floors(Duration::from_secs(2), Duration::from_secs(1)))
        .build()
        .await
        .unwrap();
    assert_eq!(v.remote().unwrap().cache_lifetime(), Duration::from_secs(7));
}

#[tokio::test]
async fn the_configured_cooldown_is_kept_then_ends() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let cooldown = Duration::from_secs(1);
    // A long cache floor: no background refresh during the test.
    let v = Verifier::from_jwks_url(&ks.url)
        .issuer(ISS)
        .audience(AUD)
        .min_cache_ttl(Duration::from_secs(600))
        .unknown_kid_cooldown(cooldown)
        .build()
        .await
        .unwrap();
    let stats = v.remote().unwrap().stats();
    let start = tokio::time::Instant::now();
    let before = ks.count();
    // A made-up kid: one look, which starts the cooldown.
    let junk = signer(Algorithm::ES256);
    let refused = v.verify::<Value>(&token(&junk, json!({}))).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::UnknownKid);
    assert_eq!(ks.count() - before, 1);
    // A key published now is not looked for until the cooldown ends...
    let b = signer(Algorithm::ES256);
    ks.set(|i| i.keys.push(public(&b)));
    let refused = v.verify::<Value>(&token(&b, json!({}))).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::UnknownKid);
    assert!(stats.cooldown_rejections.load(Ordering::SeqCst) >= 1);
    // ...and then found at the first look after it.
    let (v, b) = (&v, &b);
    eventually("the new key is looked for", || async {
        match v.verify::<Value>(&token(b, json!({}))).await {
            Ok(_) => Some(()),
            Err(e) if e.kind() == ErrorKind::UnknownKid => None,
            Err(e) => panic!("{e}"),
        }
    })
    .await;
    assert!(
        start.elapsed() >= cooldown,
        "looked before the cooldown ended"
    );
    assert_eq!(ks.count() - before, 2, "one look per cooldown, no more");
    assert_eq!(stats.unknown_kid_fetches.load(Ordering::SeqCst), 2);
}

/// The promise end to end, in compressed time: a key published (just after
/// the verifier's fetch, the worst moment) `min_prepublish` before it signs
/// is already held when its first token arrives: no unknown-kid look.
#[tokio::test]
async fn a_key_published_for_the_rule_s_minimum_is_held_before_it_signs() {
    let a = signer(Algorithm::ES256);
    let ks = KeyServer::start(&[&a]).await;
    let f = floors(Duration::from_secs(3), Duration::from_secs(1));
    let v = Verifier::from_jwks_url(&ks.url)
        .issuer(ISS)
        .audience(AUD)
        .floors(f)
        .build()
        .await
        .unwrap();
    let b = signer(Algorithm::ES256);
    ks.set(|i| i.keys.push(public(&b)));
    // One node (no propagation), max-age=0 as served. The verifier
    // refreshes at 80% of its cache lifetime (2.4 s), so its fetch has
    // 0.6 s to finish before this token comes; a fetch still in flight then
    // is waited for (single flight), not counted as an unknown-kid look.
    let prepublish = rule::min_prepublish(Duration::ZERO, Duration::ZERO, &f);
    assert_eq!(prepublish, Duration::from_secs(3));
    tokio::time::sleep(prepublish).await;
    v.verify::<Value>(&token(&b, json!({}))).await.unwrap();
    let stats = v.remote().unwrap().stats();
    assert_eq!(stats.unknown_kid_fetches.load(Ordering::SeqCst), 0);
    assert_eq!(stats.cooldown_rejections.load(Ordering::SeqCst), 0);
}
