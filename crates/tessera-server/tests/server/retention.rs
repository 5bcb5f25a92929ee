//! Tables that must not only grow: no refresh family outlives a refused
//! login, the records of a family's access tokens go when the tokens
//! expire, audit entries go after their retention, and the purge of used
//! assertions runs on an index.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{backends, count_rows, oauth_error, TestServer, ISSUER, T0};
use crate::grants::{login, refreshing_backend, JWT_BEARER};
use crate::idp::Idp;

const FAMILIES: &str = "SELECT COUNT(*) FROM refresh_tokens WHERE client_id = $1";
const FAMILY_TOKENS: &str = "SELECT COUNT(*) FROM family_tokens WHERE family IN (SELECT family FROM refresh_tokens WHERE client_id = $1)";

#[tokio::test]
async fn a_login_refused_by_the_size_budget_leaves_no_family() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        // tenant_id is passed on from the assertion: 800 bytes of it do not
        // fit in the default 1024-byte budget.
        let assertion = key
            .sign(
                &json!({"iss": id, "sub": "user-42", "aud": format!("{ISSUER}/token"),
                          "exp": s.now() + 60, "jti": "big-login", "tenant_id": "x".repeat(800)}),
            )
            .unwrap();
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
            )
            .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "{}",
            b.name
        );
        assert_eq!(count_rows(&b, FAMILIES, &id).await, 0, "{}", b.name);

        // Control: a login that fits starts one family, with its token.
        login(&s, &id, &secret, &key).await;
        assert_eq!(count_rows(&b, FAMILIES, &id).await, 1, "{}", b.name);
        assert_eq!(count_rows(&b, FAMILY_TOKENS, &id).await, 1, "{}", b.name);
        s.stop().await;
    }
}

/// Federation with a refresh token: an upstream login whose Tessera token
/// is refused starts no family either.
#[tokio::test]
async fn a_federated_login_refused_by_the_size_budget_leaves_no_family() {
    let Idp {
        issuer: idp,
        jwks_url,
        key: idp_key,
    } = Idp::start("https://idp.example.test").await;
    // Upstream tokens are judged by the server's clock, which starts at T0
    // and is not moved before they are exchanged.
    let now = T0;
    let upstream = |email: &str| {
        idp_key
            .sign(
                &json!({"iss": idp, "sub": "alice", "aud": "tessera-federation",
                          "exp": now + 300, "iat": now, "email": email}),
            )
            .unwrap()
    };

    for b in backends().await {
        let file = b.data.path().join("federation.toml");
        std::fs::write(
            &file,
            format!("[[federation]]\nissuer = \"{idp}\"\njwks_url = \"{jwks_url}\"\naudience = \"tessera-federation\"\nclaims = {{ email = \"email\" }}\n"),
        )
        .unwrap();
        let config = crate::common::config_file(&b, &[], Some(&file));
        let s = TestServer::start_with(&b, config, tessera_server::ManualClock::new(T0)).await;
        let (app, app_secret) = s
            .basic_client(json!({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token"],
                                 "audiences": ["orders-api"]}))
            .await;
        let exchange = |subject: String| {
            let s = &s;
            let (app, app_secret) = (&app, &app_secret);
            async move {
                s.token_basic(
                    app,
                    app_secret,
                    &[
                        (
                            "grant_type",
                            "urn:ietf:params:oauth:grant-type:token-exchange",
                        ),
                        ("subject_token", &subject),
                        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ],
                )
                .await
            }
        };
        let long = format!("{}@example.com", "a".repeat(800));
        let resp = exchange(upstream(&long)).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "{}",
            b.name
        );
        assert_eq!(count_rows(&b, FAMILIES, &app).await, 0, "{}", b.name);

        // Control: a token that fits comes with a refresh token, stored.
        let resp = exchange(upstream("alice@example.com")).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert!(body["refresh_token"].is_string(), "{body}");
        assert_eq!(count_rows(&b, FAMILIES, &app).await, 1, "{}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn the_record_of_a_familys_access_token_goes_when_it_expires() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        login(&s, &id, &secret, &key).await;
        assert_eq!(count_rows(&b, FAMILY_TOKENS, &id).await, 1, "{}", b.name);
        // Still there at exp + leeway (a verifier may still accept it)...
        s.advance(Duration::from_secs(900 + 60)).await;
        assert_eq!(count_rows(&b, FAMILY_TOKENS, &id).await, 1, "{}", b.name);
        // ...and gone after, with the family still standing.
        s.advance(Duration::from_secs(1)).await;
        assert_eq!(count_rows(&b, FAMILY_TOKENS, &id).await, 0, "{}", b.name);
        assert_eq!(count_rows(&b, FAMILIES, &id).await, 1, "{}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn audit_entries_older_than_the_retention_are_purged() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_ADMIN_AUDIT_RETENTION", "30d")]).await;
        let (old, _) = s.basic_client(json!({})).await;
        s.advance(Duration::from_secs(20 * 86_400)).await;
        let (recent, _) = s.basic_client(json!({})).await;
        let store = &s.running.store();
        let subjects = |log: Vec<tessera_server::test_util::AuditRecord>| -> Vec<String> {
            log.into_iter().map(|entry| entry.subject).collect()
        };
        let log = subjects(store.audit_log(1000).await.unwrap());
        assert!(log.contains(&old) && log.contains(&recent), "{}", b.name);

        // 30 days after the first registration it is still kept...
        s.advance(Duration::from_secs(10 * 86_400)).await;
        let log = subjects(store.audit_log(1000).await.unwrap());
        assert!(log.contains(&old), "{}: purged early", b.name);
        // ...and a second later it is gone; the newer one stays.
        s.advance(Duration::from_secs(1)).await;
        let log = subjects(store.audit_log(1000).await.unwrap());
        assert!(!log.contains(&old), "{}: kept past retention", b.name);
        assert!(log.contains(&recent), "{}: purged early", b.name);
        s.stop().await;
    }
}

/// Every private_key_jwt authentication deletes expired used assertions:
/// by an index on their expiry.
#[tokio::test]
async fn the_purge_of_used_assertions_runs_on_an_index() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (plan, index) = if b.url.is_none() {
            (
                "SELECT COUNT(*) FROM pragma_index_list('used_assertions') WHERE name = $1",
                "used_assertions_expires_at",
            )
        } else {
            (
                "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'used_assertions' AND indexdef LIKE $1",
                "%USING btree (expires_at)",
            )
        };
        assert_eq!(count_rows(&b, plan, index).await, 1, "{}", b.name);
        if b.url.is_none() {
            // And SQLite's planner takes it for the purge.
            sqlx::any::install_default_drivers();
            let url = format!(
                "sqlite://{}?mode=rw",
                b.data.path().join("tessera.db").display()
            );
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            let rows =
                sqlx::query("EXPLAIN QUERY PLAN DELETE FROM used_assertions WHERE expires_at < 1")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            let plan: Vec<String> = rows
                .iter()
                .map(|r| sqlx::Row::try_get::<String, _>(r, 3).unwrap())
                .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("USING INDEX used_assertions_expires_at")),
                "{plan:?}"
            );
        }
        s.stop().await;
    }
}
