//! Opaque handles (`tso_` access tokens, `tsr_` refresh tokens) carry a
//! check value: the authority refuses a made-up one as it refuses an
//! unknown one, before any lookup, and every handle it mints checks.

use serde_json::{json, Value};
use tessera_verify::handle::{Handle, Kind};

use crate::common::{backends, oauth_error, TestServer};
use crate::grants::{login, refresh, refreshing_backend};
use crate::revoke::introspect;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A handle of `kind` with the right length and alphabet, and a check
/// value that does not hold.
fn made_up(kind: Kind) -> String {
    format!("{}{}", kind.prefix(), "Q".repeat(51))
}

/// `genuine` with one character of its random part changed (its check no
/// longer holds).
fn altered(genuine: &str) -> String {
    let mut bytes = genuine.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn made_up_refresh_tokens_are_refused_and_genuine_ones_rotate() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let genuine = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            Handle::parse(&genuine).map(|h| h.kind()),
            Ok(Kind::Refresh),
            "minted in the checked format"
        );

        for forged in [
            made_up(Kind::Refresh),
            altered(&genuine),
            // Relabelled: the check covers the prefix.
            format!("tso_{}", &genuine[4..]),
            // The layout before check values.
            genuine[..47].to_owned(),
        ] {
            let resp = refresh(&s, &id, &secret, &forged).await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_grant".into()),
                "{}: {forged}",
                b.name
            );
            assert_eq!(
                introspect(&s, &id, &secret, &forged).await,
                json!({"active": false})
            );
            // Revoking what was never issued is a no-op (RFC 7009 §2.2)...
            let resp = s
                .http
                .post(s.url("/revoke"))
                .basic_auth(&id, Some(&secret))
                .form(&[("token", forged.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        // ...and touched nothing: the genuine token still rotates.
        let resp = refresh(&s, &id, &secret, &genuine).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let next: Value = resp.json().await.unwrap();
        let next = next["refresh_token"].as_str().unwrap();
        assert_eq!(Handle::parse(next).map(|h| h.kind()), Ok(Kind::Refresh));
        s.stop().await;
    }
}

#[tokio::test]
async fn made_up_opaque_tokens_are_inactive_and_cannot_be_exchanged() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s
            .basic_client(json!({"token_format": "opaque", "audiences": ["orders-api"]}))
            .await;
        let (svc, svc_secret) = s
            .basic_client(
                json!({"grant_types": [EXCHANGE], "introspection_audiences": ["orders-api"]}),
            )
            .await;
        let genuine = s.token(&app, &app_secret).await;
        assert_eq!(Handle::parse(&genuine).map(|h| h.kind()), Ok(Kind::Opaque));
        let exchange = |token: String| {
            let s = &s;
            let (svc, svc_secret) = (svc.clone(), svc_secret.clone());
            async move {
                s.token_basic(
                    &svc,
                    &svc_secret,
                    &[
                        ("grant_type", EXCHANGE),
                        ("subject_token", &token),
                        ("subject_token_type", AT),
                    ],
                )
                .await
            }
        };
        for forged in [made_up(Kind::Opaque), altered(&genuine)] {
            assert_eq!(
                introspect(&s, &svc, &svc_secret, &forged).await,
                json!({"active": false}),
                "{}: {forged}",
                b.name
            );
            // RFC 8693 §2.2.2: an invalid subject_token is invalid_request.
            assert_eq!(
                oauth_error(exchange(forged).await).await,
                (400, "invalid_request".into())
            );
        }
        // Positive controls.
        assert_eq!(
            introspect(&s, &svc, &svc_secret, &genuine).await["active"],
            true
        );
        assert_eq!(exchange(genuine).await.status(), 200, "{}", b.name);
        s.stop().await;
    }
}
