//! The verification policy: which tokens a verifier accepts.

use std::time::Duration;

use crate::alg::Algorithm;
use crate::claims::{Claim, RegisteredClaims, UnixTime};
use crate::error::{Error, ErrorKind, Result};

/// Default maximum token size (checked before any decoding).
pub const DEFAULT_MAX_SIZE: usize = 8 * 1024;

/// Default clock leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// What to do with the `aud` claim.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AudienceCheck {
    /// No audience configured: RFC 7519 §4.1.3 says a token whose `aud`
    /// does not name this verifier must be rejected, so any `aud` is.
    RejectIfPresent,
    /// `aud` must name one of these.
    OneOf(Vec<String>),
    /// Do not look at `aud` (tools and tests; see [`Validation::ignore_audience`]).
    Ignore,
}

/// A verification policy.
///
/// Defaults: `exp` required, 60 s leeway, 8 KiB size limit, each key's own
/// algorithm, any `typ`, no issuer check, tokens carrying `aud` rejected
/// until an audience is configured.
///
/// ```
/// use tessera_jose::{Algorithm, Claim, Validation};
/// let v = Validation::new()
///     .issuer("https://auth.example.com")
///     .audience("orders-api")
///     .typ("at+jwt")
///     .algorithms([Algorithm::ES256])
///     .require(Claim::Jti);
/// ```
#[derive(Clone, Debug)]
pub struct Validation {
    issuers: Vec<String>,
    audience: AudienceCheck,
    required: Vec<Claim>,
    leeway: Duration,
    types: Vec<String>,
    max_size: usize,
    algorithms: Option<Vec<Algorithm>>,
    critical: Vec<String>,
}

impl Default for Validation {
    fn default() -> Self {
        Self::new()
    }
}

impl Validation {
    /// The default policy.
    pub fn new() -> Self {
        Self {
            issuers: Vec::new(),
            audience: AudienceCheck::RejectIfPresent,
            required: vec![Claim::Exp],
            leeway: DEFAULT_LEEWAY,
            types: Vec::new(),
            max_size: DEFAULT_MAX_SIZE,
            algorithms: None,
            critical: Vec::new(),
        }
    }

    /// Accepts tokens whose `iss` is `issuer` (call again to accept several).
    /// Once any issuer is set, `iss` is required.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` names `audience` (call again to accept
    /// several). Once any audience is set, `aud` is required.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        match &mut self.audience {
            AudienceCheck::OneOf(list) => list.push(audience.into()),
            other => *other = AudienceCheck::OneOf(vec![audience.into()]),
        }
        self
    }

    /// Does not check `aud` at all. For tools that inspect tokens meant for
    /// someone else; a service verifying its own requests should name itself
    /// with [`Validation::audience`] instead.
    #[must_use]
    pub fn ignore_audience(mut self) -> Self {
        self.audience = AudienceCheck::Ignore;
        self
    }

    /// Requires `claim` to be present (`exp` is required by default).
    #[must_use]
    pub fn require(mut self, claim: Claim) -> Self {
        if !self.required.contains(&claim) {
            self.required.push(claim);
        }
        self
    }

    /// Clock leeway for `exp` and `nbf`.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts header `typ` equal to `typ` (call again to accept several),
    /// compared as RFC 7515 §4.1.9 says: case-insensitively, with an
    /// optional `application/` prefix. Once any is set, `typ` is required.
    #[must_use]
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.types.push(typ.into());
        self
    }

    /// Maximum token size in bytes, checked before anything is decoded.
    #[must_use]
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Restricts the algorithms to `algs`, on top of each key's own binding.
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Declares a `crit` header extension as understood by the caller
    /// (RFC 7515 §4.1.11). None are by default.
    #[must_use]
    pub fn understand_critical(mut self, name: impl Into<String>) -> Self {
        self.critical.push(name.into());
        self
    }

    pub(crate) fn max_size_bytes(&self) -> usize {
        self.max_size
    }

    pub(crate) fn understands(&self, name: &str) -> bool {
        self.critical.iter().any(|c| c == name)
    }

    pub(crate) fn check_alg(&self, alg: Algorithm) -> Result<()> {
        match &self.algorithms {
            Some(list) if !list.contains(&alg) => Err(Error::new(
                ErrorKind::AlgNotAllowed,
                format!("algorithm {alg} is not in the allow-list"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn check_typ(&self, typ: Option<&str>) -> Result<()> {
        if self.types.is_empty() {
            return Ok(());
        }
        let Some(typ) = typ else {
            return Err(Error::new(ErrorKind::TypeMismatch, "header has no \"typ\""));
        };
        if self.types.iter().any(|t| same_media_type(t, typ)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::TypeMismatch,
                format!("header typ {:?} is not accepted", crate::alg::truncate(typ)),
            ))
        }
    }

    /// Checks the registered claims at time `now`.
    pub(crate) fn check_claims(&self, claims: &RegisteredClaims<'_>, now: UnixTime) -> Result<()> {
        for &claim in &self.required {
            if !claims.has(claim) {
                return Err(missing(claim));
            }
        }
        if let Some(exp) = claims.exp {
            // RFC 7519 §4.1.4: the current time must be before exp.
            if now.saturating_sub(self.leeway) >= exp {
                return Err(Error::new(
                    ErrorKind::Expired,
                    format!("token expired at {exp}"),
                ));
            }
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(self.leeway) < nbf {
                return Err(Error::new(
                    ErrorKind::NotYetValid,
                    format!("token is not valid before {nbf}"),
                ));
            }
        }
        if !self.issuers.is_empty() {
            let iss = claims.iss.as_deref().ok_or_else(|| missing(Claim::Iss))?;
            if !self.issuers.iter().any(|i| i == iss) {
                return Err(Error::new(
                    ErrorKind::IssuerMismatch,
                    format!("issuer {:?} is not accepted", crate::alg::truncate(iss)),
                ));
            }
        }
        match (&self.audience, &claims.aud) {
            (AudienceCheck::Ignore, _) | (AudienceCheck::RejectIfPresent, None) => Ok(()),
            (AudienceCheck::RejectIfPresent, Some(_)) => Err(Error::new(
                ErrorKind::AudienceMismatch,
                "token has an audience but this verifier names none",
            )),
            (AudienceCheck::OneOf(_), None) => Err(missing(Claim::Aud)),
            (AudienceCheck::OneOf(accepted), Some(aud)) => {
                if aud.iter().any(|a| accepted.iter().any(|x| x == a)) {
                    Ok(())
                } else {
                    Err(Error::new(
                        ErrorKind::AudienceMismatch,
                        "audience does not name this verifier",
                    ))
                }
            }
        }
    }
}

fn missing(claim: Claim) -> Error {
    Error::new(
        ErrorKind::MissingClaim,
        format!("required claim \"{}\" is missing", claim.name()),
    )
}

/// RFC 7515 §4.1.9: media types compare case-insensitively, and
/// `application/` may be omitted.
fn same_media_type(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    strip(a).eq_ignore_ascii_case(strip(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_compare_like_rfc7515_says() {
        assert!(same_media_type("at+jwt", "application/AT+JWT"));
        assert!(same_media_type("JWT", "jwt"));
        assert!(!same_media_type("at+jwt", "jwt"));
    }
}
