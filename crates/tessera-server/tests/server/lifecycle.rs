//! Key lifecycle over HTTP: a rotation timeline with a compromise, two
//! nodes racing on one database, and a restart.

use std::time::Duration;

use serde_json::{json, Value};
use tessera_jose::{ErrorKind, UnixTime};
use tessera_server::ManualClock;

use crate::common::{backends, verify, TestServer, T0};

const DAY: u64 = 86_400;

struct Issued {
    token: String,
    kid: String,
    exp: i64,
}

fn kid_of(token: &str) -> String {
    tessera_jose::decode_unverified(token, 8192).unwrap().header["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Five months with a 30-day rotation period: four scheduled rotations and
/// one compromise. At every step every token still inside its lifetime
/// verifies against the JWKS published at that step, the key that signs
/// was already in the JWKS a verifier fetched one cache lifetime earlier,
/// and the compromised key's tokens never verify again.
#[tokio::test]
async fn rotation_timeline_with_a_compromise() {
    for b in backends().await {
        let env = [
            ("TESSERA_KEYS_ROTATION_PERIOD", "30d"),
            ("TESSERA_TOKENS_MAX_ACCESS_TOKEN_TTL", "1d"),
        ];
        let s = TestServer::start(&b, &env).await;
        let max_age = s.running.config().jwks_max_age;
        let (id, secret) = s.basic_client(json!({"access_token_ttl": DAY})).await;
        let aud = s.running.config().tokens.default_audience.clone();
        let mut issued: Vec<Issued> = Vec::new();
        let mut compromised: Option<String> = None;
        let mut signing_kids: Vec<String> = Vec::new();
        let step = Duration::from_secs(6 * 3600);
        for n in 0..(150 * 4) {
            let cached = s.jwks().await;
            s.advance(max_age).await;
            let token = s.token(&id, &secret).await;
            let kid = kid_of(&token);
            if !signing_kids.contains(&kid) {
                signing_kids.push(kid.clone());
            }
            let now = s.now();
            verify(&token, &cached, &aud, now).unwrap_or_else(|e| {
                panic!(
                    "{}: step {n}: the signing key was not pre-published: {e}",
                    b.name
                )
            });
            issued.push(Issued {
                token,
                kid,
                exp: now + DAY as i64,
            });

            if n == 299 {
                // Day 75: the active key leaks.
                let active = kid_of(&s.token(&id, &secret).await);
                let resp = s
                    .admin_post(&format!("/admin/keys/{active}/compromised"), json!({}))
                    .await;
                assert_eq!(resp.status(), 200);
                let body: Value = resp.json().await.unwrap();
                assert!(body["successor"].is_string(), "{body}");
                // Its successor was published long before: a verifier that
                // fetched the key set before the compromise verifies the
                // first token it signs.
                let first = s.token(&id, &secret).await;
                assert_eq!(kid_of(&first), body["successor"].as_str().unwrap());
                verify(&first, &cached, &aud, s.now()).unwrap_or_else(|e| {
                    panic!("{}: the successor was not pre-published: {e}", b.name)
                });
                compromised = Some(active);
            }

            let current = s.jwks().await;
            for t in issued.iter().filter(|t| t.exp > now) {
                let result = verify(&t.token, &current, &aud, now);
                if compromised.as_deref() == Some(t.kid.as_str()) {
                    let err = result.expect_err("a compromised key's token verified");
                    assert_eq!(err.kind(), ErrorKind::UnknownKid);
                } else {
                    result.unwrap_or_else(|e| {
                        panic!(
                            "{}: step {n}: live token of {} rejected: {e}",
                            b.name, t.kid
                        )
                    });
                }
            }
            s.advance(step - max_age).await;
        }
        // Initial key, 4 scheduled successors, 1 compromise successor.
        assert_eq!(signing_kids.len(), 6, "{}: {signing_kids:?}", b.name);
        let keys = s.admin_get("/admin/keys").await;
        let states: Vec<&str> = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states.iter().filter(|s| **s == "compromised").count(),
            1,
            "{states:?}"
        );
        assert_eq!(
            states.iter().filter(|s| **s == "active").count(),
            1,
            "{states:?}"
        );
        assert!(
            states.iter().filter(|s| **s == "removed").count() >= 3,
            "{states:?}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn compromise_of_the_active_key_switches_in_one_step() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        let before = s.token(&id, &secret).await;
        let kid = kid_of(&before);
        let resp = s
            .admin_post(&format!("/admin/keys/{kid}/compromised"), json!({}))
            .await;
        assert_eq!(resp.status(), 200);
        let jwks: Value = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(!kids.contains(&kid.as_str()), "{kids:?}");
        let after = s.token(&id, &secret).await;
        assert_ne!(kid_of(&after), kid);
        let aud = s.running.config().tokens.default_audience.clone();
        let keys = s.jwks().await;
        assert_eq!(
            verify(&before, &keys, &aud, s.now()).unwrap_err().kind(),
            ErrorKind::UnknownKid
        );
        verify(&after, &keys, &aud, s.now()).unwrap();
        // Unknown or already compromised kid.
        let resp = s
            .admin_post(&format!("/admin/keys/{kid}/compromised"), json!({}))
            .await;
        assert_eq!(resp.status(), 404);
        let resp = s
            .admin_post("/admin/keys/nope/compromised", json!({}))
            .await;
        assert_eq!(resp.status(), 404);
        s.stop().await;
    }
}

/// Two nodes on one database, the same clock, racing every transition:
/// exactly one new key results each time.
#[tokio::test]
async fn two_nodes_racing_make_exactly_one_key() {
    for b in backends().await {
        let env = [("TESSERA_KEYS_ROTATION_PERIOD", "30d")];
        let clock = ManualClock::new(T0);
        let a = TestServer::start_at(&b, &env, clock.clone()).await;
        let c = TestServer::start_at(&b, &env, clock.clone()).await;
        let count = |keys: &Value, state: &str| {
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["state"] == state)
                .count()
        };
        let list = || a.admin_get("/admin/keys");
        assert_eq!(a.admin, c.admin, "one admin token for the cluster");
        let keys = list().await;
        // The signing key and the next one, published from the start.
        assert_eq!(
            keys["keys"].as_array().unwrap().len(),
            2,
            "{}: second node made no key: {keys}",
            b.name
        );
        assert_eq!(count(&keys, "pending"), 1, "{}: {keys}", b.name);

        for round in 0..3 {
            // Into the pre-publication window, then past the switch.
            clock.advance(Duration::from_secs(29 * DAY));
            let (x, y) = tokio::join!(a.running.refresh(), c.running.refresh());
            x.unwrap();
            y.unwrap();
            let keys = list().await;
            assert_eq!(
                count(&keys, "pending"),
                1,
                "{} round {round}: {keys}",
                b.name
            );
            clock.advance(Duration::from_secs(2 * DAY));
            let (x, y) = tokio::join!(a.running.refresh(), c.running.refresh());
            x.unwrap();
            y.unwrap();
            let keys = list().await;
            assert_eq!(
                count(&keys, "active"),
                1,
                "{} round {round}: {keys}",
                b.name
            );
            // The switch published the next key at once.
            assert_eq!(
                count(&keys, "pending"),
                1,
                "{} round {round}: {keys}",
                b.name
            );
            assert_eq!(
                keys["keys"].as_array().unwrap().len(),
                round + 3,
                "{} round {round}: {keys}",
                b.name
            );
        }
        // A node that lost a race may have read the table before the
        // winner committed; its next refresh (every keys.refresh_interval)
        // catches up, and meanwhile both keys are published.
        a.running.refresh().await.unwrap();
        c.running.refresh().await.unwrap();
        let (id, secret) = a.basic_client(json!({})).await;
        c.running.reload_clients().await.unwrap();
        assert_eq!(
            kid_of(&a.token(&id, &secret).await),
            kid_of(&c.token(&id, &secret).await)
        );

        // Manual rotations racing: one pending key, brought forward.
        let (x, y) = tokio::join!(
            a.admin_post("/admin/keys/rotate", json!({})),
            c.admin_post("/admin/keys/rotate", json!({}))
        );
        assert!(x.status().is_success() || y.status().is_success());
        assert_eq!(count(&list().await, "pending"), 1, "{}", b.name);
        a.stop().await;
        c.stop().await;
    }
}

#[tokio::test]
async fn state_survives_a_restart_and_keys_are_sealed_at_rest() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({"scope": "a"})).await;
        let kid = kid_of(&s.token(&id, &secret).await);
        let resp = s.admin_post("/admin/keys/rotate", json!({})).await;
        assert_eq!(resp.status(), 200);
        let jwks_before = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let admin_before = s.admin.clone();
        s.stop().await;

        let s = TestServer::start(&b, &[]).await;
        assert!(!s.running.created_admin_token);
        assert_eq!(s.admin, admin_before);
        let jwks_after = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(jwks_before, jwks_after, "{}", b.name);
        assert_eq!(
            kid_of(&s.token(&id, &secret).await),
            kid,
            "same active key, same client secret"
        );
        let clients: Value = s
            .http
            .get(s.url("/admin/clients"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            clients["clients"].as_array().unwrap().len(),
            2,
            "quickstart + ours, once each"
        );

        // The private key: open it with the KEK as the server does, then
        // look for it in the stored row and the database files.
        let config = s.running.config().clone();
        let rows = s.running.store().keys().await.unwrap();
        let row = rows.iter().find(|r| r.kid == kid).unwrap();
        let kek = tessera_server::test_util::Kek::load_or_create(&config.keys.kek_file).unwrap();
        let sealed = row.private_sealed.as_deref().unwrap();
        let private: Value = serde_json::from_slice(&kek.open(&kid, sealed).unwrap()).unwrap();
        let d = private["d"].as_str().unwrap().to_owned();
        let d_raw = tessera_jose::b64::decode(&d).unwrap();
        assert!(!sealed.contains(&d));
        s.stop().await;
        match b.url.as_deref() {
            None => {
                for entry in std::fs::read_dir(b.data.path()).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    if !name.starts_with("tessera.db") {
                        continue;
                    }
                    let bytes = std::fs::read(&path).unwrap();
                    assert!(
                        !contains(&bytes, d.as_bytes()),
                        "{name} holds the private key (base64url)"
                    );
                    assert!(
                        !contains(&bytes, &d_raw),
                        "{name} holds the private key (raw)"
                    );
                }
            }
            // PostgreSQL's files are not ours to read: every row of every
            // table of the schema, as text (a bytea shows as hex there).
            Some(url) => {
                let hex: String = d_raw.iter().map(|b| format!("{b:02x}")).collect();
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(tables.iter().any(|t| t == "signing_keys"), "{tables:?}");
                let rows_holding = |table: &str, needle: &str| {
                    let (pool, table, needle) = (&pool, table.to_owned(), needle.to_owned());
                    async move {
                        sqlx::query_scalar::<_, i64>(&format!(
                            "SELECT COUNT(*) FROM \"{table}\" AS r WHERE strpos(CAST(r AS text), $1) > 0"
                        ))
                        .bind(needle)
                        .fetch_one(pool)
                        .await
                        .unwrap()
                    }
                };
                // Control: the search finds what is there (the kid).
                assert_eq!(rows_holding("signing_keys", &kid).await, 1);
                for table in &tables {
                    for (what, needle) in [("base64url", &d), ("raw", &hex)] {
                        let n = rows_holding(table, needle).await;
                        assert_eq!(n, 0, "{table} holds the private key ({what})");
                    }
                }
                pool.close().await;
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_node_without_the_clusters_kek_refuses_to_start_and_writes_nothing() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let kek_file = s.running.config().keys.kek_file.clone();
        let count = s.running.store().keys().await.unwrap().len();
        s.stop().await;
        let original = std::fs::read(&kek_file).unwrap();
        let start = || async {
            tessera_server::start(
                crate::common::config(&b, &[]),
                tessera_server::StartOptions {
                    background: false,
                    ..tessera_server::StartOptions::default()
                },
            )
            .await
        };

        std::fs::remove_file(&kek_file).unwrap();
        let err = start().await.unwrap_err().to_string();
        assert!(err.contains("is missing"), "{}: {err}", b.name);
        assert!(!kek_file.exists(), "no new KEK was made");

        let private = |mode: u32| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        std::fs::write(
            &kek_file,
            format!("{}\n", tessera_jose::b64::encode([7u8; 32])),
        )
        .unwrap();
        private(0o600);
        let err = start().await.unwrap_err().to_string();
        assert!(err.contains("not the one"), "{}: {err}", b.name);

        // The right KEK, readable by others: refused, naming the fix.
        std::fs::write(&kek_file, original).unwrap();
        private(0o644);
        let err = start().await.unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{}: {err}", b.name);
        private(0o600);
        let s = TestServer::start(&b, &[]).await;
        assert_eq!(
            s.running.store().keys().await.unwrap().len(),
            count,
            "{}: refused starts wrote no key",
            b.name
        );
        s.stop().await;
    }
}

/// A SQLite file that is not a database, is cut short or damaged where
/// start-up reads nothing: the start is refused naming the file and
/// SQLite's reason (never a pool timeout), and the file is left as it was.
#[tokio::test]
async fn a_broken_sqlite_file_is_refused_at_start_naming_it_and_left_alone() {
    for b in backends().await.into_iter().filter(|b| b.name == "sqlite") {
        let s = TestServer::start(&b, &[]).await;
        s.stop().await;
        let file = b.data.path().join("tessera.db");
        // Every page in the file itself, none left in the WAL (where a
        // read would find it and miss the damage).
        {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        let healthy = std::fs::read(&file).unwrap();
        // Page 2 (bytes 4096..8192 at the default page size) is the root of
        // the first table the migrations make: always in use, never free.
        let mut damaged = healthy.clone();
        damaged[4096..8192].fill(0xa5);
        // SQLite finds a damaged page on opening (malformed) or in the
        // quick check (damaged), depending on which page it is.
        let cases: [(&str, Vec<u8>, &[&str]); 3] = [
            (
                "not a database",
                vec![0x5a; 8192],
                &["file is not a database"],
            ),
            (
                "cut short",
                healthy[..healthy.len() / 3].to_vec(),
                &["malformed"],
            ),
            (
                "damaged in a page in use",
                damaged,
                &["malformed", "damaged"],
            ),
        ];
        for (what, bytes, reason) in cases {
            std::fs::write(&file, &bytes).unwrap();
            let err = tessera_server::start(
                crate::common::config(&b, &[]),
                tessera_server::StartOptions {
                    background: false,
                    ..tessera_server::StartOptions::default()
                },
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(err.contains(&file.display().to_string()), "{what}: {err}");
            assert!(reason.iter().any(|r| err.contains(r)), "{what}: {err}");
            assert_eq!(
                std::fs::read(&file).unwrap(),
                bytes,
                "{what}: left as it was"
            );
        }
        std::fs::write(&file, &healthy).unwrap();
        let s = TestServer::start(&b, &[]).await;
        s.stop().await;
    }
}

#[tokio::test]
async fn a_key_that_does_not_load_never_leaves_the_old_one_signing() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s.basic_client(json!({})).await;
        s.token(&id, &secret).await;
        let state = &s.running;
        let now = s.now();
        // Another node retired our key and activated one we cannot open.
        let active = state
            .store()
            .keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.state == tessera_server::test_util::KeyState::Active)
            .unwrap();
        let by = tessera_server::test_util::Transition {
            actor: "test",
            now: UnixTime::from_secs(now),
        };
        let mut tx = state.store().begin(by).await.unwrap();
        assert!(tx
            .retire(&active.kid, UnixTime::from_secs(now + 864_000))
            .await
            .unwrap());
        let mut unreadable = active.clone();
        unreadable.kid = "unreadable".into();
        unreadable.private_sealed = Some("not sealed by our KEK".into());
        unreadable.activated_at = Some(UnixTime::from_secs(now));
        tx.insert(&unreadable).await.unwrap();
        tx.commit().await.unwrap();

        let _ = state.refresh().await;
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        let (status, code) = crate::common::oauth_error(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (503, "temporarily_unavailable"),
            "{}",
            b.name
        );
        assert_eq!(
            s.http.get(s.url("/readyz")).send().await.unwrap().status(),
            503
        );
        s.stop().await;
    }
}
