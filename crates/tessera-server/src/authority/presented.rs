//! Tokens presented back to the authority (revocation, introspection,
//! exchange): recognised once ([`PresentedToken`]), resolved to one of this
//! issuer's own live access tokens ([`OwnToken`]), checked against the
//! deny-list, and shown only to whom may see them
//! ([`OwnToken::visible_to`]).
//!
//! Signatures of this issuer's own JWTs are checked once
//! ([`VerifiedJwts`]): introspection sees the same token many times. An
//! entry holds the verified claims until the token's `exp` and only for the
//! key set it was verified under (`KeyRing::version`), so a compromised
//! key's tokens are checked again, and fail, once it is gone. Revocation is
//! not cached: the deny-list is read on every use.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tessera_jose::{UnixTime, Validation};
use tessera_verify::expiring::ExpiringCache;
use tessera_verify::handle::{Handle, HandleError, Kind};
use tessera_verify::token_hash;

use super::{Authority, OAuthError};
use crate::clients::Client;
use crate::store::JtiRevocation;

/// A token as presented, recognised by its form: handles by their prefix
/// and check value, anything else is perhaps a JWT.
#[derive(Clone, Copy)]
pub(crate) enum PresentedToken<'a> {
    /// An opaque access token handle (`tso_`).
    Opaque(&'a str),
    /// A refresh token handle (`tsr_`).
    Refresh(&'a str),
    /// A handle prefix on something no handle is: never issued.
    Malformed,
    /// Not a handle: perhaps one of this issuer's JWTs.
    Jwt(&'a str),
}

impl<'a> PresentedToken<'a> {
    /// What `token` is, by its form alone.
    pub(crate) fn recognise(token: &'a str) -> Self {
        match Handle::parse(token) {
            Ok(h) if h.kind() == Kind::Opaque => Self::Opaque(token),
            Ok(_) => Self::Refresh(token),
            Err(HandleError::Malformed(_)) => Self::Malformed,
            Err(HandleError::NotAHandle) => Self::Jwt(token),
        }
    }
}

/// One of this issuer's access tokens (JWT or opaque), live.
#[derive(Debug, Clone)]
pub(crate) struct OwnToken {
    pub(crate) claims: Map<String, Value>,
    /// Its jti, or `tso:` and the hash of an opaque token: what tokens
    /// exchanged from it are recorded under.
    pub(crate) key: String,
    /// The key that signed it (none for an opaque token).
    pub(crate) kid: Option<String>,
}

impl OwnToken {
    /// The client it was issued to.
    pub(crate) fn owner(&self) -> &str {
        self.claims
            .get("client_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Its audiences.
    pub(crate) fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Who may see (introspect, exchange) it: the client it was issued to,
    /// and a client with one of its audiences among its
    /// `introspection_audiences` (a resource server it was issued for).
    pub(crate) fn visible_to(&self, client: &Client) -> bool {
        if self.owner() == client.id {
            return true;
        }
        let allowed = &client.metadata.introspection_audiences;
        self.audiences().iter().any(|a| allowed.contains(a))
    }
}

/// A verified JWT: its claims and the kid of the key that signed it.
#[derive(Debug)]
pub(crate) struct OwnJwt {
    claims: Map<String, Value>,
    jti: String,
    kid: Option<String>,
}

/// The cache of verified JWTs, keyed by the token's SHA-256 (base64url),
/// each entry until the token's `exp` and tagged with the version of the
/// key set it was verified under.
pub(crate) type VerifiedJwts = ExpiringCache<String, Arc<OwnJwt>, Arc<str>>;

impl Authority {
    /// The live access token of this issuer that `token` is, without the
    /// deny-list (the callers read it in their own order). Every JWT this
    /// issuer signs has a `jti`: one without is not ours.
    ///
    /// # Errors
    /// On storage failure; 503 when the signing key is not loaded here
    /// and the key table cannot be read.
    pub(crate) async fn own_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<OwnToken>, OAuthError> {
        match PresentedToken::recognise(token) {
            PresentedToken::Opaque(token) => {
                let hash = token_hash::encoded(token);
                match self.store.opaque(&hash).await? {
                    Some(row) if row.expires_at.secs() > now => Ok(Some(OwnToken {
                        claims: row.claims,
                        key: crate::store::opaque_parent(&hash),
                        kid: None,
                    })),
                    _ => Ok(None),
                }
            }
            PresentedToken::Jwt(token) => Ok(self.own_jwt(token, now).await?.map(|jwt| OwnToken {
                claims: jwt.claims.clone(),
                key: jwt.jti.clone(),
                kid: jwt.kid.clone(),
            })),
            PresentedToken::Refresh(_) | PresentedToken::Malformed => Ok(None),
        }
    }

    /// A JWT of this issuer, verified (without leeway) once per key set.
    async fn own_jwt(&self, token: &str, now: i64) -> Result<Option<Arc<OwnJwt>>, OAuthError> {
        let key = token_hash::encoded(token);
        if let Some(jwt) = self.verified_jwts.get(&key, now, &self.keys.ring().version) {
            return Ok(Some(jwt));
        }
        let validation = self.own_token_validation(Duration::ZERO);
        // A kid this node has not loaded is looked up again first.
        let Some((verified, version)) = self.keys.verify_own(token, &validation, now).await? else {
            return Ok(None);
        };
        let exp = verified.registered().exp.map_or(now, UnixTime::secs);
        let jti = verified.registered().jti.map(|j| j.into_owned());
        let (Some(jti), Value::Object(claims)) = (jti, verified.claims) else {
            return Ok(None);
        };
        let jwt = Arc::new(OwnJwt {
            claims,
            jti,
            kid: verified.header.kid.as_deref().map(str::to_owned),
        });
        // Under the key set it was verified with (perhaps just reloaded).
        self.verified_jwts
            .put(key, Arc::clone(&jwt), exp, version, now);
        Ok(Some(jwt))
    }

    /// Whether the deny-list refuses `token`: its jti, its key, or a
    /// revocation of everything of its subject or client.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn refuses(&self, token: &OwnToken) -> Result<bool, OAuthError> {
        self.deny_list
            .refuses(&token.claims, token.kid.as_deref())
            .await
    }

    /// RFC 7662: `{"active": true, ...claims}` for a valid, unrevoked
    /// access token (or, to its own client, refresh token) of this issuer
    /// that `client` may see; only `{"active": false}` for anything else,
    /// whatever the reason.
    ///
    /// # Errors
    /// On storage failure, or 503 (see [`Authority::own_access_token`]).
    pub(crate) async fn introspect(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Value, OAuthError> {
        let now = self.now();
        if let PresentedToken::Refresh(token) = PresentedToken::recognise(token) {
            return self.introspect_refresh(client, token, now).await;
        }
        let inactive = json!({"active": false});
        let Some(own) = self.own_access_token(token, now).await? else {
            return Ok(inactive);
        };
        // The key too: another node may list a compromised key before this
        // one reloads its key set.
        if !own.visible_to(client) || self.refuses(&own).await? {
            return Ok(inactive);
        }
        let mut answer = own.claims;
        answer.insert("active".into(), json!(true));
        answer.insert("token_type".into(), json!("Bearer"));
        Ok(Value::Object(answer))
    }

    /// A refresh token is active until it is used, its family is revoked,
    /// or it passes its idle deadline or its family's end. Only the client
    /// it was issued to may introspect it: no resource server ever holds
    /// one.
    async fn introspect_refresh(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let row = self
            .store
            .refresh_token(&token_hash::encoded(token))
            .await?;
        let Some(row) = row.filter(|r| {
            r.client_id == client.id
                && r.spent_at.is_none()
                && r.revoked_at.is_none()
                && now <= r.expires_at.secs()
                && now <= r.idle_until.secs()
        }) else {
            return Ok(json!({"active": false}));
        };
        let mut answer = json!({
            "active": true,
            "token_type": "refresh_token",
            "iss": self.config.issuer,
            "sub": row.subject,
            "client_id": row.client_id,
            "exp": row.idle_until.min(row.expires_at).secs(),
        });
        answer["aud"] = row.audience;
        if !row.scope.is_empty() {
            answer["scope"] = Value::String(row.scope);
        }
        Ok(answer)
    }

    /// RFC 7009: revokes `token` if `client` holds it. Handles are
    /// recognised by their format and JWT access tokens by their signature,
    /// whatever `token_type_hint` says (it is only a hint, §2.1).
    ///
    /// # Errors
    /// `unauthorized_client` for another client's token (§2.1); on storage
    /// failure; 503 when the signing key is not loaded here and the key
    /// table cannot be read: never a success for a token that might be
    /// live and is not listed.
    pub(crate) async fn revoke(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        let now = self.now();
        let at = UnixTime::from_secs(now);
        let jwt = match PresentedToken::recognise(token) {
            PresentedToken::Opaque(token) => {
                let hash = token_hash::encoded(token);
                let done = self.store.delete_opaque(&hash, &client.id, at).await?;
                return owned(done);
            }
            PresentedToken::Refresh(token) => {
                let hash = token_hash::encoded(token);
                let done = self
                    .store
                    .revoke_refresh_family(&hash, &client.id, at)
                    .await?;
                // The family's access tokens are now on the deny-list.
                self.deny_list.listed();
                return owned(done);
            }
            // Made up or mistyped: never issued, nothing to revoke (§2.2).
            PresentedToken::Malformed => return Ok(()),
            PresentedToken::Jwt(jwt) => jwt,
        };
        let leeway = self.config.tokens.leeway;
        let validation = self.own_token_validation(leeway);
        let Some((verified, _)) = self.keys.verify_own(jwt, &validation, now).await? else {
            // Invalid, expired, or not ours: nothing to revoke (§2.2).
            return Ok(());
        };
        if verified.claims["client_id"].as_str() != Some(client.id.as_str()) {
            return Err(not_issued_to_caller());
        }
        let reg = verified.registered();
        let (Some(jti), Some(exp)) = (reg.jti.as_deref(), reg.exp) else {
            return Ok(());
        };
        // Listed for as long as any verifier could still accept the token.
        let seq = self
            .store
            .revoke_jti(&JtiRevocation {
                jti,
                client_id: &client.id,
                expires_at: exp.saturating_add(leeway),
                now: at,
            })
            .await?;
        tracing::info!(client_id = %client.id, jti, seq, "access token revoked");
        self.deny_list.listed();
        Ok(())
    }

    /// The policy that recognises this issuer's own access tokens, whatever
    /// their audience.
    fn own_token_validation(&self, leeway: Duration) -> Validation {
        Validation::new()
            .issuer(self.config.issuer.clone())
            .ignore_audience()
            .typ("at+jwt")
            .leeway(leeway)
    }
}

/// RFC 7009 §2.1: a client may revoke only its own tokens. `done` is what
/// the store said: None unknown (fine, §2.2), Some(false) another client's.
fn owned(done: Option<bool>) -> Result<(), OAuthError> {
    match done {
        Some(false) => Err(not_issued_to_caller()),
        _ => Ok(()),
    }
}

fn not_issued_to_caller() -> OAuthError {
    OAuthError::unauthorized_client("the token was not issued to this client")
}
