use std::time::Duration;

use serde_json::json;

use super::testdb::{at, each};
use super::*;

#[tokio::test]
async fn everything_expired_goes_in_one_pass() {
    for db in each().await {
        let s = &db.store;
        let claims = json!({"sub": "alice"}).as_object().cloned().unwrap();
        for (hash, exp) in [("H-old", 99), ("H-live", 2000)] {
            s.insert_opaque(&NewOpaque {
                hash,
                client_id: "app",
                claims: &claims,
                now: at(0),
                expires_at: at(exp),
            })
            .await
            .unwrap();
        }
        for (jti, exp) in [("j-old", 99), ("j-live", 2000)] {
            s.revoke_jti(&JtiRevocation {
                jti,
                client_id: "app",
                expires_at: at(exp),
                now: at(0),
            })
            .await
            .unwrap();
        }
        for (secs, subject) in [(499, "c-old"), (500, "c-kept")] {
            s.audit(&AuditEntry {
                at: at(secs),
                actor: "admin",
                action: "client_registered",
                subject,
            })
            .await
            .unwrap();
        }
        // Audit entries are kept for 500 seconds before `at(1000)`.
        s.purge_expired(at(1000), Duration::from_secs(500))
            .await
            .unwrap();
        assert_eq!(s.opaque("H-old").await.unwrap(), None, "{}", db.name);
        assert!(s.opaque("H-live").await.unwrap().is_some());
        let listed: Vec<String> = s
            .revocations_since(0, 10)
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|e| e.target.map(|t| t.value))
            .collect();
        assert_eq!(listed, ["j-live"], "{}", db.name);
        let audited: Vec<String> = s
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .filter(|subject| subject.starts_with("c-"))
            .collect();
        assert_eq!(audited, ["c-kept"], "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn only_a_lost_race_is_a_conflict() {
    for db in each().await {
        let s = &db.store;
        let row = ClientRow {
            client_id: "c-1".into(),
            metadata: json!({}),
            secret_hash: None,
            created_at: at(0),
        };
        s.insert_client(&row).await.unwrap();
        assert!(s.insert_client(&row).await.unwrap_err().is_conflict());
        assert!(!StoreError::Corrupt("a row".into()).is_conflict());
        let bad_sql = sqlx::query("SELECT nothing FROM nowhere")
            .execute(&s.pool)
            .await
            .map_err(StoreError::from)
            .unwrap_err();
        assert!(!bad_sql.is_conflict(), "{}: {bad_sql}", db.name);
        db.finish().await;
    }
}

/// A database error with a given code, as a driver would return it.
#[derive(Debug)]
struct Coded(&'static str);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {}", self.0)
    }
}

impl std::error::Error for Coded {}

impl sqlx::error::DatabaseError for Coded {
    fn message(&self) -> &str {
        "coded"
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.0.into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

fn coded(code: &'static str) -> StoreError {
    StoreError::Db(sqlx::Error::Database(Box::new(Coded(code))))
}

#[test]
fn an_unreachable_database_is_unavailable_and_nothing_else_is() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let out_of_reach = [
        StoreError::Db(sqlx::Error::PoolTimedOut),
        StoreError::Db(sqlx::Error::PoolClosed),
        StoreError::Db(sqlx::Error::Io(refused)),
        // PostgreSQL: connection failure, admin and crash shutdown, a
        // starting server, too many connections; SQLite: busy.
        coded("08006"),
        coded("08001"),
        coded("57P01"),
        coded("57P02"),
        coded("57P03"),
        coded("53300"),
        coded("5"),
        coded("517"),
        // A full disk (PostgreSQL, SQLite): writes resume once space is
        // freed, with no restart (docs/RELIABILITY.md, scenario 4).
        coded("53100"),
        coded("13"),
    ];
    for e in out_of_reach {
        assert!(e.is_unavailable(), "{e}");
    }
    let broken = [
        StoreError::Corrupt("a row".into()),
        StoreError::Db(sqlx::Error::RowNotFound),
        StoreError::Db(sqlx::Error::Protocol("garbled".into())),
        // Unique violation, undefined table, database dropped, SQLite
        // constraint and corrupt file.
        coded("23505"),
        coded("42P01"),
        coded("57P04"),
        coded("19"),
        coded("11"),
    ];
    for e in broken {
        assert!(!e.is_unavailable(), "{e}");
    }
}

#[tokio::test]
async fn real_failures_are_classified() {
    for db in each().await {
        let s = &db.store;
        let row = ClientRow {
            client_id: "c-1".into(),
            metadata: json!({}),
            secret_hash: None,
            created_at: at(0),
        };
        s.insert_client(&row).await.unwrap();
        let twice = s.insert_client(&row).await.unwrap_err();
        assert!(!twice.is_unavailable(), "{}: {twice}", db.name);
        let bad_sql = sqlx::query("SELECT nothing FROM nowhere")
            .execute(&s.pool)
            .await
            .map_err(StoreError::from)
            .unwrap_err();
        assert!(!bad_sql.is_unavailable(), "{}: {bad_sql}", db.name);
        if s.is_sqlite() {
            // A full disk: the page limit of one connection stands in for it.
            let mut conn = s.pool.acquire().await.unwrap();
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
                .execute(&mut *conn)
                .await
                .unwrap();
            let full = sqlx::query(
                "INSERT INTO audit_log (id, at, actor, action, subject) VALUES ($1, 0, 'a', 'b', $2)",
            )
            .bind("full")
            .bind("x".repeat(200_000))
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)
            .unwrap_err();
            assert!(full.is_unavailable(), "{}: {full}", db.name);
            assert!(full.to_string().contains("full"), "{full}");
            sqlx::query("PRAGMA max_page_count = 1073741823")
                .execute(&mut *conn)
                .await
                .unwrap();
        } else {
            // A session the server ends (`pg_terminate_backend`, a
            // shutdown): what its next statement gets.
            let mut conn = s.pool.acquire().await.unwrap();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&s.pool)
                .await
                .unwrap();
            let ended = sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)
                .unwrap_err();
            assert!(ended.is_unavailable(), "{}: {ended}", db.name);
            drop(conn);
        }
        s.close().await;
        let closed = s.ping().await.unwrap_err();
        assert!(closed.is_unavailable(), "{}: {closed}", db.name);
        db.finish().await;
    }
}
