//! Issuance: a [`Basis`] becomes an access token (RFC 9068 JWT, or an
//! opaque handle whose claims stay here), held to the size budget, stored
//! with what it depends on (its refresh-token family, the tokens it was
//! exchanged from), and counted.
//!
//! The hot path reads the client and the signing key from memory (no
//! database read, no lock) and writes nothing for `client_credentials`
//! with JWTs.

use std::sync::Arc;

use serde_json::{Map, Value};
use tessera_jose::UnixTime;

use tessera_verify::{handle, token_hash};
use zeroize::Zeroizing;

use super::basis::{Basis, Exchange};
use super::claims::{access_claims, checked_json, ServerClaims};
use super::params::ACCESS_TOKEN_TYPE;
use super::{Authority, OAuthError};
use crate::clients::{Client, GrantType, TokenFormat};
use crate::store::{Derived, FamilyAccess, NewOpaque, TokenFacts};

/// What the token endpoint answers with (RFC 6749 §5.1).
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) access_token: Zeroizing<String>,
    pub(crate) expires_in: i64,
    /// Omitted from the answer when empty.
    pub(crate) scope: String,
    pub(crate) refresh_token: Option<Zeroizing<String>>,
    /// RFC 8693 §2.2.1: what an exchange issued.
    pub(crate) issued_token_type: Option<&'static str>,
}

/// The access token being issued, before it is stored.
struct Minted {
    jti: String,
    exp: i64,
    ttl: i64,
}

impl Authority {
    /// Issues the access token `basis` describes for `client`, and the
    /// refresh token of its session, if any.
    ///
    /// # Errors
    /// 503 without an active signing key; `invalid_request` over the size
    /// budget; `invalid_grant` when a presented refresh token or a parent
    /// token was spent or revoked meanwhile; storage failures.
    pub(crate) async fn issue(
        &self,
        client: &Client,
        grant: GrantType,
        basis: Basis,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let key = self
            .keys
            .ring()
            .primary()
            .map(Arc::clone)
            .ok_or_else(|| OAuthError::unavailable("no active signing key yet"))?;
        let ttl = self.lifetime(client, basis.exchange.as_ref(), now);
        let minted = Minted {
            jti: crate::random_id(16),
            exp: now.saturating_add(ttl),
            ttl,
        };
        let claims = access_claims(
            &ServerClaims {
                iss: &self.config.issuer,
                sub: basis.subject.as_deref().unwrap_or(&client.id),
                aud: &basis.audience,
                exp: minted.exp,
                iat: now,
                jti: &minted.jti,
                client_id: &client.id,
                scope: &basis.scope,
                act: basis.exchange.as_ref().and_then(|x| x.act.as_ref()),
            },
            &client.metadata.claims,
            &basis.claims,
        );
        checked_json(&claims)?;
        // An exchange always answers with a JWT: that is what the phantom
        // token pattern exchanges an opaque token for.
        if client.metadata.token_format == TokenFormat::Opaque && basis.exchange.is_none() {
            return self
                .issue_opaque(client, grant, basis, &minted, &claims, now)
                .await;
        }
        let token = key
            .signer
            .sign(&claims)
            .map_err(|e| OAuthError::internal(&e))?;
        self.within_budget(client, &token)?;
        if let Some(exchange) = &basis.exchange {
            self.record_parents(exchange, &minted).await?;
        }
        // Last: the refresh token presented is spent (or the family
        // started) only now that the access token it pays for is issued.
        let refresh_token = match basis.session {
            Some(session) => {
                let access = FamilyAccess::Jwt {
                    jti: &minted.jti,
                    expires_at: self.listed_until(minted.exp),
                };
                Some(self.store_session(session, client, access, now).await?)
            }
            None => None,
        };
        client.issued.count(grant);
        Ok(Issued {
            access_token: Zeroizing::new(token),
            expires_in: minted.ttl,
            scope: basis.scope,
            refresh_token,
            issued_token_type: basis.exchange.is_some().then_some(ACCESS_TOKEN_TYPE),
        })
    }

    /// The Stripe model: a random handle; the claims stay here and are
    /// read through introspection.
    async fn issue_opaque(
        &self,
        client: &Client,
        grant: GrantType,
        basis: Basis,
        minted: &Minted,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let opaque = Zeroizing::new(handle::mint(handle::Kind::Opaque));
        let hash = token_hash::encoded(&opaque);
        let refresh_token = match basis.session {
            Some(session) => {
                let access = FamilyAccess::Opaque {
                    hash: &hash,
                    claims,
                    expires_at: UnixTime::from_secs(minted.exp),
                };
                Some(self.store_session(session, client, access, now).await?)
            }
            None => {
                self.store
                    .insert_opaque(&NewOpaque {
                        hash: &hash,
                        client_id: &client.id,
                        claims,
                        now: UnixTime::from_secs(now),
                        expires_at: UnixTime::from_secs(minted.exp),
                    })
                    .await?;
                None
            }
        };
        client.issued.count(grant);
        Ok(Issued {
            access_token: opaque,
            expires_in: minted.ttl,
            scope: basis.scope,
            refresh_token,
            issued_token_type: None,
        })
    }

    /// The token's lifetime: the client's, capped by today's maximum
    /// (keys.grace was checked against it, so a token never outlives the
    /// retired key that signed it) and, for an exchange, by the exchanged
    /// token's `exp`.
    fn lifetime(&self, client: &Client, exchange: Option<&Exchange>, now: i64) -> i64 {
        let max_ttl = self.config.tokens.max_access_token_ttl.as_secs();
        let ttl = i64::try_from(client.metadata.access_token_ttl.min(max_ttl)).unwrap_or(900);
        match exchange.and_then(|x| x.cap) {
            Some(cap) => ttl.min(cap.saturating_sub(now)).max(0),
            None => ttl,
        }
    }

    /// Refuses a JWT over the configured size budget.
    fn within_budget(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        let budget = self.config.tokens.size_budget;
        if token.len() > budget {
            tracing::warn!(client_id = %client.id, bytes = token.len(), budget, "token over the size budget: refused");
            return Err(OAuthError::invalid_request(format!(
                "the access token would be {} bytes, over the server's {budget}-byte budget; ask for fewer scopes or one audience",
                token.len()
            )));
        }
        Ok(())
    }

    /// Until when a deny-list entry for a JWT expiring at `exp` must last:
    /// as long as any verifier could accept it.
    fn listed_until(&self, exp: i64) -> UnixTime {
        UnixTime::from_secs(exp).saturating_add(self.config.tokens.leeway)
    }

    /// Records the tokens an exchange was granted on: revoking the subject
    /// or actor token (or everything of its client or key) reaches this one
    /// through the deny-list feed.
    async fn record_parents(&self, exchange: &Exchange, minted: &Minted) -> Result<(), OAuthError> {
        for parent in &exchange.parents {
            let derived = Derived {
                jti: &minted.jti,
                expires_at: self.listed_until(minted.exp),
                parent: parent.key.clone(),
                parent_client: parent.owner(),
                parent_kid: parent.kid.as_deref(),
            };
            let recorded = self
                .store
                .record_derived(&derived, TokenFacts::from_claims(&parent.claims))
                .await?;
            if !recorded {
                // Revoked between the check and now.
                return Err(OAuthError::invalid_request(
                    "subject_token or actor_token is no longer valid",
                ));
            }
        }
        Ok(())
    }
}
