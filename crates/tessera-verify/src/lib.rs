//! What a Rust service embeds to verify Tessera (or any standard) access
//! tokens.
//!
//! - [`Verifier`]: keys from an issuer's discovery document, a JWKS URL or
//!   a static JWKS; the strict policy of `tessera-jose` (key bound to one
//!   algorithm, `typ` `at+jwt`/`JWT`, issuer, audience, `exp` required).
//! - [`RemoteKeySet`]: the JWKS cache that survives rotation and outages —
//!   `Cache-Control` within bounds, `If-None-Match`, background refresh,
//!   single-flight refresh on an unknown kid with a cooldown, stale-if-error.
//! - [`rule`]: how long an authority must publish a key before it signs,
//!   given the `max-age` it serves and the verifiers' [`rule::Floors`] (the
//!   minimum cache lifetime and the unknown-kid cooldown, set with
//!   [`VerifierBuilder::min_cache_ttl`] and
//!   [`VerifierBuilder::unknown_kid_cooldown`]); the authority checks its
//!   settings with [`rule::min_prepublish`] at start.
//! - [`DenyList`]: follows the authority's deny-list feed (long-polled) and,
//!   given to [`VerifierBuilder::revocations`], refuses revoked tokens as
//!   `revoked` within a second: listed jtis, and rules that revoke every
//!   token of a subject or client issued before a time, or signed by a key.
//!   The feed is read within bounds ([`FeedOptions`]: page size counted as it
//!   streams, back-off, a bounded catch-up) and the list says whether it has
//!   read to the end ([`DenyList::caught_up`]).
//! - [`feed_format`]: the feed's wire format (pages, entries, [`RuleKind`]),
//!   which the authority writes with and the follower reads with.
//! - [`handle`]: the self-checking format of Tessera's opaque handles
//!   (`tso_` access tokens, `tsr_` refresh tokens), minted by the authority
//!   and recognised by the authority and the gateway.
//! - [`expiring`]: the bounded cache whose entries expire, shared with the
//!   authority and the gateway.
//! - [`token_hash`]: the SHA-256 of a token as the authority stores it;
//!   [`url_policy`]: HTTPS, or plain HTTP to a loopback address only.
//! - [`VerifyLayer`] (tower) and [`Claims`] (axum extractor): 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3) for a
//!   bad token, 403 `insufficient_scope` for a missing scope.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tessera_verify::{Claims, Verifier, VerifyLayer};
//!
//! let verifier = Verifier::from_issuer("http://127.0.0.1:8080")
//!     .audience("orders-api")
//!     .build()
//!     .await?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/orders", axum::routing::get(|Claims(c): Claims<serde_json::Value>| async move {
//!         format!("hello {}", c["sub"])
//!     }))
//!     .layer(VerifyLayer::new(Arc::new(verifier)).require_scope("orders:read"));
//! # Ok(()) }
//! ```

mod cache;
mod denylist;
pub mod expiring;
mod extract;
mod feed;
pub mod feed_format;
pub mod handle;
mod layer;
pub mod remote;
pub mod rule;
pub mod token_hash;
pub mod url_policy;
mod verifier;

pub use denylist::{DenyList, TokenFacts};
pub use extract::Claims;
pub use feed::FeedOptions;
pub use feed_format::RuleKind;
pub use layer::{bearer_token, check, Refusal, VerifiedToken, VerifyLayer, VerifyService};
pub use remote::{RemoteKeySet, RemoteOptions, Stats};
pub use verifier::{Verifier, VerifierBuilder};

/// What the fuzz targets (`fuzz/`) call: thin entry points into the
/// parsers of what the verifier and the follower read from the network.
/// Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use tessera_jose::{Algorithm, KeySet};

    use crate::feed_format::Page;
    use crate::DenyList;

    /// A JWKS response body as a [`RemoteKeySet`](crate::RemoteKeySet)
    /// reads it, keys bound with `algorithms`.
    ///
    /// # Errors
    /// Why the body is refused.
    pub fn jwks(body: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
        crate::remote::parse_jwks(body, algorithms)
    }

    /// A deny-list feed page as the follower reads it, applied to `list`;
    /// `None` (and `list` untouched) when the body is not a page.
    pub fn feed_page(list: &DenyList, body: &[u8]) -> Option<Page> {
        let page = crate::feed::parse_page(body)?;
        list.apply(&page);
        Some(page)
    }

    /// The JWKS URL a discovery document gives for `issuer`, as the
    /// verifier reads it before fetching the JWKS (HTTPS, or loopback HTTP).
    ///
    /// # Errors
    /// Why the document or its URL is refused.
    pub fn discovery(body: &[u8], issuer: &str) -> Result<String, String> {
        let uri = crate::verifier::jwks_uri_of(body, issuer)?;
        let url = crate::remote::check_url(&uri).map_err(|e| e.to_string())?;
        Ok(url.to_string())
    }
}

/// Why a verifier could not be built (configuration, not a token's fault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A URL that is malformed or not HTTPS.
    #[error("URL {0}")]
    Url(String),
    /// The discovery document could not be read or names another issuer.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The JWKS could not be fetched.
    #[error("JWKS fetch: {0}")]
    Fetch(String),
    /// The JWKS is not usable.
    #[error("JWKS: {0}")]
    Jwks(String),
}
