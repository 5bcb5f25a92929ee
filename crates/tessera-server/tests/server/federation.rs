//! Federation's namespaces and claim precedence: two upstreams never yield
//! one Tessera subject, and a mapping never puts a second value of a
//! client's static claim into a token.

use serde_json::{json, Value};

use crate::common::{backends, config_file, oauth_error, verify, Backend, TestServer, T0};
use crate::idp::Idp;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

fn settings(b: &Backend, tables: &[String]) -> tessera_server::Config {
    let file = b.data.path().join("federation.toml");
    std::fs::write(&file, tables.concat()).unwrap();
    config_file(b, &[], Some(&file))
}

async fn exchange(s: &TestServer, who: &(String, String), token: &str) -> reqwest::Response {
    s.token_basic(
        &who.0,
        &who.1,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", JWT),
        ],
    )
    .await
}

/// The claims of a successful exchange, verified strictly, and the raw
/// payload.
async fn exchanged(s: &TestServer, who: &(String, String), token: &str) -> (Value, String) {
    let resp = exchange(s, who, token).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let jwt = body["access_token"].as_str().unwrap();
    let claims = verify(jwt, &s.jwks().await, "orders-api", s.now()).unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let raw = String::from_utf8(tessera_jose::b64::decode(payload).unwrap()).unwrap();
    (claims, raw)
}

/// An upstream token is judged by the server's clock, as every token and
/// assertion the server sees is: valid while that clock is within its
/// lifetime (the system clock, months later, is not asked), `expired` once
/// the clock has moved past it, whatever the system clock says.
#[tokio::test]
async fn an_upstream_token_is_judged_by_the_server_s_clock() {
    let idp = Idp::start("https://idp.example.test").await;
    // Months before the system clock: the token below has long expired by it.
    let start = tessera_jose::UnixTime::now().secs() - 90 * 86_400;
    for b in backends().await {
        let config = settings(&b, &[idp.table("")]);
        let s = TestServer::start_with(&b, config, tessera_server::ManualClock::new(start)).await;
        let svc = s
            .basic_client(json!({"grant_types": [EXCHANGE], "audiences": ["orders-api"]}))
            .await;
        let token = idp.token("alice", s.now(), json!({}));
        let (c, _) = exchanged(&s, &svc, &token).await;
        assert_eq!(c["sub"], "idp.example.test|alice", "{}", b.name);

        // Past its exp (300 s) and any leeway, by the server's clock.
        s.advance(std::time::Duration::from_secs(3600)).await;
        let resp = exchange(&s, &svc, &token).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{}: {body}",
            b.name
        );
        assert_eq!(
            body["error_description"], "subject_token: expired",
            "{}",
            b.name
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn two_upstreams_with_the_same_subject_yield_two_subjects() {
    let keycloak = Idp::start("https://kc.example.test/realms/staff").await;
    let auth0 = Idp::start("https://tenant.auth0.example.test/").await;
    for b in backends().await {
        let config = settings(
            &b,
            &[
                keycloak.table(""),
                auth0.table("subject_prefix = \"auth0\""),
            ],
        );
        let s = TestServer::start_with(&b, config, tessera_server::ManualClock::new(T0)).await;
        let svc = s
            .basic_client(json!({"grant_types": [EXCHANGE], "audiences": ["orders-api"]}))
            .await;
        let (from_kc, _) = exchanged(&s, &svc, &keycloak.token("alice", s.now(), json!({}))).await;
        let (from_auth0, _) = exchanged(&s, &svc, &auth0.token("alice", s.now(), json!({}))).await;
        assert_eq!(
            (from_kc["sub"].as_str(), from_auth0["sub"].as_str()),
            (
                Some("kc.example.test/realms/staff|alice"),
                Some("auth0|alice")
            ),
            "{}",
            b.name
        );

        // Logging one alice out everywhere leaves the other signed in.
        let resp = s
            .admin_post("/admin/revoke", json!({"sub": "auth0|alice"}))
            .await;
        assert_eq!(resp.status(), 200);
        let before = json!({"iat": s.now() - 10});
        let resp = exchange(&s, &svc, &auth0.token("alice", s.now(), before.clone())).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "{}",
            b.name
        );
        let (still, _) = exchanged(&s, &svc, &keycloak.token("alice", s.now(), before)).await;
        assert_eq!(still["sub"], "kc.example.test/realms/staff|alice");
        s.stop().await;
    }
}

/// `org` mapped onto `tenant_id` next to a client whose static claims set
/// `tenant_id`: refused when such a client registers, and at start when it
/// already exists; the messages name the claims, the federation and the
/// client.
#[tokio::test]
async fn a_mapping_onto_a_static_claim_is_refused_at_registration_and_at_start() {
    let idp = Idp::start("https://idp.example.test").await;
    let mapping = "claims = { org = \"tenant_id\", mail = \"email\" }";
    for b in backends().await {
        let s = TestServer::start_with(
            &b,
            settings(&b, &[idp.table(mapping)]),
            tessera_server::ManualClock::new(T0),
        )
        .await;
        let colliding = json!({"client_name": "svc", "grant_types": [EXCHANGE], "claims": {"tenant_id": "acme"}});
        let resp = s.admin_post("/admin/clients", colliding.clone()).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{}: {body}",
            b.name
        );
        let text = body["error_description"].as_str().unwrap();
        assert!(
            text.contains("\"tenant_id\"") && text.contains("\"org\"") && text.contains(idp.issuer),
            "{text}"
        );
        // Controls: no token-exchange grant, or no shared name.
        s.register(json!({"client_name": "svc", "claims": {"tenant_id": "acme"}}))
            .await;
        s.register(
            json!({"client_name": "svc", "grant_types": [EXCHANGE], "claims": {"tier": "gold"}}),
        )
        .await;
        s.stop().await;

        // The client registered while no federation was configured...
        let s = TestServer::start_with(
            &b,
            config_file(&b, &[], None),
            tessera_server::ManualClock::new(T0),
        )
        .await;
        let id = s.register(colliding).await["client_id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.stop().await;
        // ...then the mapping is added: the node does not start.
        let err = tessera_server::start(
            settings(&b, &[idp.table(mapping)]),
            tessera_server::StartOptions {
                clock: std::sync::Arc::new(tessera_server::ManualClock::new(T0)),
                background: false,
                key_notifications: false,
                handle_signals: false,
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&id) && err.contains("\"tenant_id\"") && err.contains("\"org\""),
            "{}: {err}",
            b.name
        );
    }
}

/// A client that slipped past both checks (registered through a node with
/// another federation config) gets one `tenant_id` in its tokens: the
/// administrator's, not the upstream's; the server's claims stay the
/// server's.
#[tokio::test]
async fn a_static_claim_wins_over_a_mapped_one_and_appears_once() {
    let idp = Idp::start("https://idp.example.test").await;
    for b in backends().await {
        let clock = tessera_server::ManualClock::new(T0);
        let plain = TestServer::start_with(&b, config_file(&b, &[], None), clock.clone()).await;
        let federating = TestServer::start_with(
            &b,
            settings(
                &b,
                &[idp.table("claims = { org = \"tenant_id\", mail = \"email\" }")],
            ),
            clock,
        )
        .await;
        let svc = plain
            .basic_client(json!({"grant_types": [EXCHANGE], "audiences": ["orders-api"], "claims": {"tenant_id": "acme"}}))
            .await;
        federating.running.reload_clients().await.unwrap();
        let upstream = idp.token(
            "alice",
            federating.now(),
            json!({"org": "evil", "mail": "alice@example.com", "client_id": "tc_evil"}),
        );
        let (c, raw) = exchanged(&federating, &svc, &upstream).await;
        assert_eq!(raw.matches("\"tenant_id\"").count(), 1, "{}: {raw}", b.name);
        assert_eq!(
            (
                c["tenant_id"].as_str(),
                c["email"].as_str(),
                c["client_id"].as_str(),
                c["sub"].as_str()
            ),
            (
                Some("acme"),
                Some("alice@example.com"),
                Some(svc.0.as_str()),
                Some("idp.example.test|alice")
            ),
            "{}: {c}",
            b.name
        );
        plain.stop().await;
        federating.stop().await;
    }
}
