//! Token exchange (RFC 8693): downscoping, delegation, phantom tokens.

use serde_json::{json, Value};

use crate::common::{backends, oauth_error, verify, TestServer};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn exchange(
    s: &TestServer,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut f = vec![("grant_type", EXCHANGE)];
    f.extend_from_slice(form);
    s.token_basic(id, secret, &f).await
}

#[tokio::test]
async fn downscoping_delegation_and_phantom_tokens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s
            .basic_client(json!({"audiences": ["orders-api", "billing-api"], "scope": "orders:read orders:write", "claims": {"tenant_id": "acme"}}))
            .await;
        let (svc, svc_secret) = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"], "audiences": ["internal"]}))
            .await;
        let subject = s.token(&app, &app_secret).await;
        let subject_claims = verify(&subject, &s.jwks().await, "orders-api", s.now()).unwrap();

        // Downscoping: one audience, less scope.
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "orders-api"),
                ("scope", "orders:read"),
            ],
        )
        .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(body["issued_token_type"], AT);
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(
            (c["sub"].as_str(), c["client_id"].as_str()),
            (subject_claims["sub"].as_str(), Some(svc.as_str()))
        );
        assert_eq!(
            (c["aud"].as_str(), c["scope"].as_str()),
            (Some("orders-api"), Some("orders:read"))
        );
        assert_eq!(c["tenant_id"], "acme", "the user's claims carry over");
        assert!(
            c["exp"].as_i64().unwrap() <= subject_claims["exp"].as_i64().unwrap(),
            "never longer-lived"
        );
        assert!(c.get("act").is_none());

        // Never wider.
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "payroll-api"),
            ],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_target".into()));
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("scope", "orders:admin"),
            ],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_scope".into()));

        // Delegation: the service proves itself with its own token.
        let actor = s.token(&svc, &svc_secret).await;
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token", &actor),
                ("actor_token_type", AT),
            ],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(c["act"], json!({"sub": svc}), "{}", b.name);
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token", &subject),
                ("actor_token_type", AT),
            ],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "someone else's token as actor"
        );

        // Phantom token: an opaque token exchanged for an internal JWT.
        let (opq, opq_secret) = s.basic_client(json!({"token_format": "opaque", "audiences": ["orders-api"], "scope": "orders:read"})).await;
        let opaque = s.token(&opq, &opq_secret).await;
        assert!(opaque.starts_with("tso_"));
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", &opaque), ("subject_token_type", AT)],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(c["sub"], opq.as_str(), "{}", b.name);

        // Refusals.
        let (stranger, stranger_secret) = s.basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["payroll-api"]})).await;
        let resp = exchange(
            &s,
            &stranger,
            &stranger_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "not its token to exchange"
        );
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unsupported_token_type".into())
        );
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", "garbage"), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        let resp = exchange(&s, &svc, &svc_secret, &[("subject_token_type", AT)]).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        let resp = exchange(
            &s,
            &app,
            &app_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unauthorized_client".into()),
            "grant not registered"
        );
        // A revoked subject token cannot be exchanged.
        let resp = s
            .http
            .post(s.url("/revoke"))
            .basic_auth(&app, Some(&app_secret))
            .form(&[("token", subject.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "{}: revoked",
            b.name
        );
        s.stop().await;
    }
}
