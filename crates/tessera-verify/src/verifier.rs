//! The verifier: a key source (static, JWKS URL, or issuer discovery) and
//! the core's strict policy.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tessera_jose::{Algorithm, Claim, ErrorKind, JwkSet, KeySet, UnixTime, Validation, Verified};

use crate::cache::TokenCache;
use crate::denylist::{DenyList, TokenFacts};

/// The one unregistered claim the deny-list reads.
#[derive(serde::Deserialize)]
struct ClientIdClaim {
    client_id: Option<String>,
}
use crate::layer::VerifiedToken;
use crate::remote::{self, RemoteKeySet, RemoteOptions};
use crate::BuildError;

enum Source {
    Static(Box<KeySet>),
    Remote(Arc<RemoteKeySet>),
}

/// Verifies access tokens. Cheap to share (`Arc<Verifier>`); the hot path
/// takes no lock.
pub struct Verifier {
    source: Source,
    validation: Validation,
    cache: Option<TokenCache>,
    denylist: Option<Arc<DenyList>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Verifier");
        match &self.source {
            Source::Static(k) => d.field("keys", &k.keys().len()),
            Source::Remote(r) => d.field("remote", r),
        };
        d.field("validation", &self.validation).finish()
    }
}

enum Origin {
    Remote(Arc<RemoteKeySet>),
    Issuer(String),
    JwksUrl(String),
    Jwks(String),
}

/// Builds a [`Verifier`]: where the keys come from, then the policy.
pub struct VerifierBuilder {
    origin: Origin,
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    required: Vec<Claim>,
    types: Vec<String>,
    leeway: Option<Duration>,
    max_size: Option<usize>,
    remote: RemoteOptions,
    cache: Option<usize>,
    denylist: Option<Arc<DenyList>>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Keys from the issuer's discovery document (`/.well-known/openid-configuration`,
    /// else `/.well-known/oauth-authorization-server`), whose `issuer` must
    /// equal `issuer` exactly (RFC 8414 §3.3); tokens must carry that `iss`.
    pub fn from_issuer(issuer: impl Into<String>) -> VerifierBuilder {
        let issuer = issuer.into();
        let mut b = VerifierBuilder::new(Origin::Issuer(issuer.clone()));
        b.issuers.push(issuer);
        b
    }

    /// Keys from a JWKS URL.
    pub fn from_jwks_url(url: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(Origin::JwksUrl(url.into()))
    }

    /// Keys from a remote key set another verifier already follows (one
    /// cache, several policies: the gateway's per-route audiences).
    pub fn from_remote(keys: Arc<RemoteKeySet>) -> VerifierBuilder {
        VerifierBuilder::new(Origin::Remote(keys))
    }

    /// Keys from a JWKS document (no fetching).
    pub fn from_jwks(json: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(Origin::Jwks(json.into()))
    }

    /// Verifies `token`: size, structure, key by kid bound to its
    /// algorithm, signature, then the claims policy. A kid the cached key
    /// set lacks triggers one refresh (single flight, with a cooldown)
    /// and one more try.
    ///
    /// # Errors
    /// The core's error, whose kind is the stable code (`unknown_kid`,
    /// `bad_signature`, `expired`...).
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> tessera_jose::Result<Verified<T>> {
        self.verify_at(token, UnixTime::now()).await
    }

    /// [`Verifier::verify`] with the time claims (`exp`, `nbf`, `iat`) and
    /// the deny-list judged at `now` instead of the system clock: for a
    /// caller that runs on a clock of its own, as the authority does when
    /// it verifies a federated upstream's token. The key set's cache
    /// lifetime still runs on the runtime's clock.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub async fn verify_at<T: DeserializeOwned>(
        &self,
        token: &str,
        now: UnixTime,
    ) -> tessera_jose::Result<Verified<T>> {
        let verified = self.verify_signature::<T>(token, now).await?;
        if let Some(list) = &self.denylist {
            let reg = verified.registered();
            // client_id is not a registered claim: read only while a rule
            // could need it.
            let client_id = if list.has_rules() {
                serde_json::from_str::<ClientIdClaim>(verified.payload_json())
                    .ok()
                    .and_then(|c| c.client_id)
            } else {
                None
            };
            let facts = TokenFacts {
                jti: reg.jti.as_deref(),
                sub: reg.sub.as_deref(),
                client_id: client_id.as_deref(),
                kid: verified.header.kid.as_deref(),
                iat: reg.iat.map(UnixTime::secs),
            };
            if list.refuses(facts, now.secs()) {
                return Err(tessera_jose::Error::revoked());
            }
        }
        Ok(verified)
    }

    async fn verify_signature<T: DeserializeOwned>(
        &self,
        token: &str,
        now: UnixTime,
    ) -> tessera_jose::Result<Verified<T>> {
        match &self.source {
            Source::Static(keys) => tessera_jose::verify_at(token, keys, &self.validation, now),
            Source::Remote(remote) => {
                let (keys, generation) = remote.keys();
                match tessera_jose::verify_at(token, &keys, &self.validation, now) {
                    Err(e) if e.kind() == ErrorKind::UnknownKid => {
                        if remote.refresh_for_unknown_kid(generation).await {
                            let (keys, _) = remote.keys();
                            tessera_jose::verify_at(token, &keys, &self.validation, now)
                        } else {
                            Err(e)
                        }
                    }
                    other => other,
                }
            }
        }
    }

    /// [`Verifier::verify`] into a [`VerifiedToken`] (claims as JSON), through
    /// the verified-token cache when the builder enabled one: a token seen
    /// before, still before its `exp` and verified under the current key
    /// set, is not checked again.
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub async fn verify_token(&self, token: &str) -> tessera_jose::Result<VerifiedToken> {
        let Some(cache) = &self.cache else {
            let v = self.verify::<serde_json::Value>(token).await?;
            return Ok(VerifiedToken::new(v.header, v.claims));
        };
        let key = crate::token_hash::digest(token);
        let now = tessera_jose::UnixTime::now().secs();
        let generation = self.generation();
        if let Some(hit) = cache.get(&key, now, &generation) {
            // A cached token is still checked against the deny-list.
            if let Some(list) = &self.denylist {
                let facts = hit
                    .claims
                    .as_object()
                    .map(TokenFacts::from_claims)
                    .unwrap_or_default()
                    .signed_by(hit.header.kid.as_deref());
                if list.refuses(facts, now) {
                    return Err(tessera_jose::Error::revoked());
                }
            }
            return Ok(hit);
        }
        let v = self.verify::<serde_json::Value>(token).await?;
        let exp = v.registered().exp.map_or(now, tessera_jose::UnixTime::secs);
        let out = VerifiedToken::new(v.header, v.claims);
        // Entries are tied to the generation the token verified under.
        cache.put(key, out.clone(), exp, self.generation(), now);
        Ok(out)
    }

    fn generation(&self) -> u64 {
        match &self.source {
            Source::Static(_) => 0,
            Source::Remote(r) => r.generation(),
        }
    }

    /// The remote key set, when keys are fetched (for its counters).
    pub fn remote(&self) -> Option<&Arc<RemoteKeySet>> {
        match &self.source {
            Source::Remote(r) => Some(r),
            Source::Static(_) => None,
        }
    }
}

impl VerifierBuilder {
    fn new(origin: Origin) -> Self {
        Self {
            origin,
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: Vec::new(),
            required: Vec::new(),
            types: Vec::new(),
            leeway: None,
            max_size: None,
            remote: RemoteOptions::default(),
            cache: None,
            denylist: None,
        }
    }

    /// Accept tokens from this issuer too (from an issuer URL, that issuer
    /// is already required).
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// An audience this service answers to (call again for several); the
    /// token's `aud` must name one. Without any, a token with `aud` is
    /// refused: name yourself.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Allow this algorithm (call again for several). Default: each key's
    /// own `alg`. Keys without `alg` are bound to the allowed ones.
    #[must_use]
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.algorithms.push(alg);
        self
    }

    /// Require a claim (`exp` always is).
    #[must_use]
    pub fn require(mut self, claim: Claim) -> Self {
        self.required.push(claim);
        self
    }

    /// Accept this header `typ` (call again for several). Default: `at+jwt`
    /// and `JWT`.
    #[must_use]
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.types.push(typ.into());
        self
    }

    /// Clock leeway for `exp` and `nbf` (default 60 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Largest token accepted, checked before any decoding (default 8 KiB).
    #[must_use]
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Remember up to `entries` verified tokens (by SHA-256) until their
    /// `exp`, for [`Verifier::verify_token`] and the layer: repeat checks of
    /// a token clients reuse cost a hash and a lookup.
    #[must_use]
    pub fn cache(mut self, entries: usize) -> Self {
        self.cache = Some(entries);
        self
    }

    /// Reject tokens whose `jti` is on this deny-list (`revoked`), for
    /// example one following the issuer's feed ([`DenyList::follow`]).
    #[must_use]
    pub fn revocations(mut self, list: Arc<DenyList>) -> Self {
        self.denylist = Some(list);
        self
    }

    /// How the remote key set is fetched and cached (replaces every
    /// option, floors included: call the floor methods after it).
    #[must_use]
    pub fn remote_options(mut self, options: RemoteOptions) -> Self {
        self.remote = options;
        self
    }

    /// The shortest cache lifetime given to a fetched key set, whatever its
    /// `max-age` (default 60 s). The authority's prepublish must cover it
    /// ([`crate::rule::min_prepublish`]; its `keys.verifier_min_cache_ttl`).
    #[must_use]
    pub fn min_cache_ttl(mut self, ttl: Duration) -> Self {
        self.remote.min_cache_ttl = ttl;
        self
    }

    /// After a fetch for an unknown kid, how long further unknown kids are
    /// refused without a fetch (default 30 s). The authority's prepublish
    /// must cover it too (its `keys.verifier_unknown_kid_cooldown`).
    #[must_use]
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.remote.unknown_kid_cooldown = cooldown;
        self
    }

    /// Both floors at once (what the authority was configured to assume).
    #[must_use]
    pub fn floors(mut self, floors: crate::rule::Floors) -> Self {
        self.remote = self.remote.with_floors(floors);
        self
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new();
        for i in &self.issuers {
            v = v.issuer(i.clone());
        }
        for a in &self.audiences {
            v = v.audience(a.clone());
        }
        for c in &self.required {
            v = v.require(*c);
        }
        let types = if self.types.is_empty() {
            vec!["at+jwt".to_owned(), "JWT".to_owned()]
        } else {
            self.types.clone()
        };
        for t in types {
            v = v.typ(t);
        }
        if let Some(l) = self.leeway {
            v = v.leeway(l);
        }
        if let Some(m) = self.max_size {
            v = v.max_size(m);
        }
        if !self.algorithms.is_empty() {
            v = v.algorithms(self.algorithms.clone());
        }
        v
    }

    /// Fetches what is needed and returns the verifier.
    ///
    /// # Errors
    /// A URL that is not HTTPS (or loopback HTTP), a discovery document
    /// for another issuer, or a first fetch that fails or is not a JWKS.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let validation = self.validation();
        let source = match &self.origin {
            Origin::Jwks(json) => {
                let set =
                    JwkSet::parse(json).map_err(|e| BuildError::Jwks(e.message().to_owned()))?;
                let keys = KeySet::from_jwks(&set, &self.algorithms)
                    .map_err(|e| BuildError::Jwks(e.message().to_owned()))?;
                if keys.is_empty() {
                    return Err(BuildError::Jwks("no usable signature key".into()));
                }
                Source::Static(Box::new(keys))
            }
            Origin::Remote(keys) => Source::Remote(Arc::clone(keys)),
            Origin::JwksUrl(url) => Source::Remote(
                RemoteKeySet::fetch(url, self.remote.clone(), self.algorithms.clone()).await?,
            ),
            Origin::Issuer(issuer) => {
                let jwks_uri = discover(issuer, &self.remote).await?;
                Source::Remote(
                    RemoteKeySet::fetch(&jwks_uri, self.remote.clone(), self.algorithms.clone())
                        .await?,
                )
            }
        };
        Ok(Verifier {
            source,
            validation,
            cache: self.cache.map(TokenCache::new),
            denylist: self.denylist.clone(),
        })
    }
}

/// Reads the issuer's metadata and returns its `jwks_uri`.
async fn discover(issuer: &str, options: &RemoteOptions) -> Result<String, BuildError> {
    let base = issuer.trim_end_matches('/');
    let http = remote::http_client(options)?;
    let mut last = String::new();
    for doc in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let url = remote::check_url(&format!("{base}{doc}"))?;
        match remote::get_limited(&http, &url, None, options.max_response_bytes).await {
            Ok((status, _, body)) if status == reqwest::StatusCode::OK => {
                return jwks_uri_of(&body, issuer).map_err(|e| {
                    BuildError::Discovery(format!("{}: {e}", remote::redacted(&url)))
                });
            }
            Ok((status, _, _)) => last = format!("{}: HTTP {status}", remote::redacted(&url)),
            Err(e) => last = format!("{}: {e}", remote::redacted(&url)),
        }
    }
    Err(BuildError::Discovery(last))
}

/// The `jwks_uri` of a discovery document (RFC 8414 §3.2) that names
/// `issuer` as its issuer (§3.3).
pub(crate) fn jwks_uri_of(body: &[u8], issuer: &str) -> Result<String, String> {
    let meta: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    if meta["issuer"].as_str() != Some(issuer) {
        return Err(format!(
            "the document's issuer is not {issuer:?} (RFC 8414 §3.3)"
        ));
    }
    meta["jwks_uri"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no jwks_uri".to_owned())
}

#[cfg(test)]
mod tests {
    use super::jwks_uri_of;

    const ISSUER: &str = "https://issuer.example";

    #[test]
    fn discovery_gives_the_jwks_uri_of_the_issuer_asked_for() {
        let doc =
            br#"{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/jwks"}"#;
        assert_eq!(
            jwks_uri_of(doc, ISSUER).as_deref(),
            Ok("https://issuer.example/jwks")
        );
        let other = jwks_uri_of(doc, "https://issuer.example/").unwrap_err();
        assert!(other.contains("RFC 8414 §3.3"), "{other}");
        for (doc, want) in [
            (
                &br#"{"issuer":"https://issuer.example"}"#[..],
                "no jwks_uri",
            ),
            (
                br#"{"issuer":"https://issuer.example","jwks_uri":5}"#,
                "no jwks_uri",
            ),
            (br#"{"jwks_uri":"https://issuer.example/jwks"}"#, "RFC 8414"),
            (br#"["https://issuer.example"]"#, "RFC 8414"),
            (b"{", "not JSON"),
        ] {
            let got = jwks_uri_of(doc, ISSUER).unwrap_err();
            assert!(got.contains(want), "{got}");
        }
    }
}
