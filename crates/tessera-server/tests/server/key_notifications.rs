//! Key changes reach the other nodes on PostgreSQL through `LISTEN/NOTIFY`:
//! a compromise answered on one node stops another signing with the key
//! without waiting for a periodic refresh. These test servers run no
//! periodic refresh at all (and read keys again for an unknown kid only
//! when a token is presented to them, which no step here does), so only
//! the notification can explain the change.

use serde_json::json;
use tessera_testkit::eventually;

use crate::common::{backends, Backend, TestServer};

fn kid_of(token: &str) -> String {
    tessera_jose::decode_unverified(token, 8192).unwrap().header["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The PostgreSQL backend, or None (said on stderr) when it is not set up.
async fn postgres() -> Option<Backend> {
    let pg = backends().await.into_iter().find(|b| b.name == "postgres");
    if pg.is_none() {
        eprintln!(
            "SKIPPED: key notifications between nodes need PostgreSQL; set TESSERA_TEST_DATABASE_URL"
        );
    }
    pg
}

/// Asks `node` for tokens until one is signed by another key than `old`
/// (eventually: the latency is measured by
/// `bench/src/bin/key_propagation.rs`, not asserted here); that key.
async fn wait_for_new_kid(node: &TestServer, client: &(String, String), old: &str) -> String {
    let what = format!("the node signs with another key than {old}");
    eventually(&what, || async {
        let kid = kid_of(&node.token(&client.0, &client.1).await);
        (kid != old).then_some(kid)
    })
    .await
}

#[tokio::test]
async fn a_compromise_on_one_node_stops_a_listening_node_signing_with_the_key() {
    let Some(b) = postgres().await else { return };
    let a = TestServer::start_listening(&b, &[]).await;
    let listening = TestServer::start_listening(&b, &[]).await;
    // The control: a node that does not listen.
    let deaf = TestServer::start(&b, &[]).await;
    let app = a.basic_client(json!({})).await;
    listening.running.reload_clients().await.unwrap();
    let old = kid_of(&listening.token(&app.0, &app.1).await);
    assert_eq!(old, kid_of(&a.token(&app.0, &app.1).await));

    let resp = a
        .admin_post(&format!("/admin/keys/{old}/compromised"), json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let new = wait_for_new_kid(&listening, &app, &old).await;

    assert_eq!(new, kid_of(&a.token(&app.0, &app.1).await), "the successor");
    assert!(!listening.running.loaded_kids().contains(&old));
    let published = listening.jwks().await;
    assert!(published
        .keys()
        .iter()
        .all(|k| k.kid() != Some(old.as_str())));
    for _ in 0..10 {
        let kid = kid_of(&listening.token(&app.0, &app.1).await);
        assert_eq!(kid, new, "never the compromised key again");
    }
    assert!(
        deaf.running.loaded_kids().contains(&old),
        "the node that does not listen has not reloaded: the notification did it"
    );
}

#[tokio::test]
async fn a_listener_whose_connection_is_killed_listens_again_and_catches_up() {
    let Some(b) = postgres().await else { return };
    let a = TestServer::start_listening(&b, &[]).await;
    let listening = TestServer::start_listening(&b, &[]).await;
    let app = a.basic_client(json!({})).await;
    listening.running.reload_clients().await.unwrap();
    let old = kid_of(&listening.token(&app.0, &app.1).await);

    // Both nodes' listening connections go (named after this test's
    // schema: other tests' stay), once they are there.
    let pool = sqlx::PgPool::connect(b.url.as_deref().unwrap())
        .await
        .unwrap();
    let pool = &pool;
    eventually("both nodes listen", || async {
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND application_name = 'tessera-keys ' || current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (killed.len() >= 2).then_some(())
    })
    .await;
    pool.close().await;

    let resp = a
        .admin_post("/admin/keys/rotate", json!({"immediate": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let new = wait_for_new_kid(&listening, &app, &old).await;
    assert_eq!(new, kid_of(&a.token(&app.0, &app.1).await));
}
