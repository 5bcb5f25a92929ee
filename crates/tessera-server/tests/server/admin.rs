//! The admin API: refusals without or with a wrong token, client
//! registration rules, deletion, and key listing without private material.

use serde_json::{json, Value};

use crate::common::{backends, oauth_error, TestServer};

#[tokio::test]
async fn admin_api_refuses_missing_and_wrong_tokens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let routes = [
            ("POST", "/admin/clients"),
            ("GET", "/admin/clients"),
            ("DELETE", "/admin/clients/tc_x"),
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys/rotate"),
            ("POST", "/admin/keys/abc/compromised"),
        ];
        for (method, path) in routes {
            for auth in [
                None,
                Some("Bearer tat_wrong"),
                Some(format!("Basic {}", s.admin).as_str()),
                Some("Bearer "),
            ] {
                let mut req = s
                    .http
                    .request(method.parse().unwrap(), s.url(path))
                    .json(&json!({"client_name": "x"}));
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                let resp = req.send().await.unwrap();
                let challenge = resp.headers().get("www-authenticate").cloned();
                assert_eq!(
                    oauth_error(resp).await,
                    (401, "invalid_token".into()),
                    "{method} {path} {auth:?}"
                );
                assert!(challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")));
            }
        }
        // Nothing was created by the refused calls.
        let list: Value = s
            .http
            .get(s.url("/admin/clients"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["quickstart"], "{}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn registration_list_delete() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let c = s.register(json!({"client_name": "billing", "scope": "invoices:read", "audiences": ["billing-api"], "claims": {"tenant_id": "acme"}})).await;
        let id = c["client_id"].as_str().unwrap().to_owned();
        let secret = c["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(c["client_name"], "billing");
        assert_eq!(c["grant_types"], json!(["client_credentials"]));
        assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(c["client_secret_expires_at"], 0);
        assert!(secret.len() >= 43);

        let list: Value = s
            .http
            .get(s.url("/admin/clients"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = list["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["client_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(listed["claims"], json!({"tenant_id": "acme"}));
        assert!(
            !list.to_string().contains(&secret),
            "the secret is shown only once"
        );
        assert!(listed.get("client_secret").is_none());

        s.token(&id, &secret).await;
        let resp = s.delete_client(&id).await;
        assert_eq!(resp.status(), 204);
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(
            oauth_error(resp).await,
            (401, "invalid_client".into()),
            "deleted client"
        );
        let resp = s.delete_client(&id).await;
        assert_eq!(resp.status(), 404);

        for bad in [
            json!({"scope": "x"}),
            json!({"client_name": "x", "claims": {"password": "p"}}),
            json!({"client_name": "x", "token_endpoint_auth_method": "none"}),
            json!("not an object"),
        ] {
            let resp = s.admin_post("/admin/clients", bad.clone()).await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_client_metadata".into()),
                "{bad}"
            );
        }
        // Unknown RFC 7591 members are ignored, not refused (§2).
        let c = s.register(json!({"client_name": "web", "redirect_uris": ["https://x/cb"], "software_id": "abc"})).await;
        assert!(c.get("redirect_uris").is_none(), "{c}");
        s.stop().await;
    }
}

#[tokio::test]
async fn key_listing_shows_no_private_material() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_KEYS_ALGORITHMS", "ES256,EdDSA")]).await;
        let resp = s
            .http
            .get(s.url("/admin/keys"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let keys = body["keys"].as_array().unwrap();
        // Per algorithm the signing key and the next one, published.
        assert_eq!(keys.len(), 4, "{}: {text}", b.name);
        for alg in ["ES256", "EdDSA"] {
            let mut states: Vec<&str> = keys
                .iter()
                .filter(|k| k["alg"] == alg)
                .map(|k| k["state"].as_str().unwrap())
                .collect();
            states.sort_unstable();
            assert_eq!(states, ["active", "pending"], "{}: {text}", b.name);
        }
        for forbidden in ["\"d\"", "sealed", "private"] {
            assert!(!text.contains(forbidden), "{forbidden} in {text}");
        }
        s.stop().await;
    }
}
