//! `[[federation]]`: upstream issuers whose tokens are exchanged for
//! Tessera tokens (RFC 8693), checked at load: what their claims may map
//! onto, and the subject namespace each one gets.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ConfigError;
use super::parse::without_scheme;

/// Separates a federation's subject prefix from the upstream subject in a
/// federated `sub` (`<prefix>|<upstream sub>`, as Auth0 writes
/// `google-oauth2|1234`). No prefix may contain it, and no jwt-bearer user
/// subject either, so a federated subject is never anything else's.
pub(crate) const SUBJECT_SEPARATOR: char = '|';

/// Longest subject prefix.
const MAX_PREFIX: usize = 100;

/// An upstream issuer as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    issuer: String,
    jwks_url: Option<String>,
    audience: String,
    subject_prefix: Option<String>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
}

/// An upstream issuer whose tokens clients may exchange for Tessera tokens
/// (RFC 8693 federation), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Its issuer URL (`iss` of its tokens; discovery is read from it
    /// unless `jwks_url` is given).
    pub issuer: String,
    /// Its JWKS URL, if discovery is not to be used.
    pub jwks_url: Option<String>,
    /// The audience its tokens must carry to be exchanged here.
    pub audience: String,
    /// What its subjects are prefixed with: upstream `sub` `alice` becomes
    /// Tessera `sub` `<subject_prefix>|alice`. Unique among upstreams.
    pub subject_prefix: String,
    /// Upstream claim -> Tessera claim, copied into the exchanged token.
    /// No two upstream claims map onto one Tessera claim, and none onto a
    /// claim the server sets.
    pub claims: BTreeMap<String, String>,
}

impl Upstream {
    /// The Tessera subject of an upstream subject: `<prefix>|<sub>`, so two
    /// upstreams with the same `sub` never yield the same Tessera subject,
    /// and no federated subject equals a client id or a jwt-bearer user.
    pub fn subject(&self, upstream_sub: &str) -> String {
        format!("{}{SUBJECT_SEPARATOR}{upstream_sub}", self.subject_prefix)
    }

    /// The first mapping whose target is one of `static_claims` (a client's
    /// static claims): `(upstream claim, Tessera claim)`.
    pub fn collision<'a>(
        &'a self,
        static_claims: &Map<String, Value>,
    ) -> Option<(&'a str, &'a str)> {
        self.claims
            .iter()
            .find(|(_, to)| static_claims.contains_key(to.as_str()))
            .map(|(from, to)| (from.as_str(), to.as_str()))
    }
}

/// Validates every `[[federation]]` table.
pub(super) fn validate(raw: Vec<RawUpstream>) -> Result<Vec<Upstream>, ConfigError> {
    let mut out: Vec<Upstream> = Vec::with_capacity(raw.len());
    for (i, up) in raw.into_iter().enumerate() {
        let upstream = upstream(i, up, &out)?;
        out.push(upstream);
    }
    Ok(out)
}

/// Validates the `i`th table, which must not repeat an `earlier` one's
/// issuer or subject namespace.
fn upstream(i: usize, up: RawUpstream, earlier: &[Upstream]) -> Result<Upstream, ConfigError> {
    let at = |member: &str| format!("federation[{i}].{member}");
    let issuer = up.issuer;
    if issuer.is_empty() {
        return Err(ConfigError::new(at("issuer"), "must not be empty"));
    }
    if earlier.iter().any(|o| o.issuer == issuer) {
        return Err(ConfigError::new(
            at("issuer"),
            format!("{issuer:?} is configured twice"),
        ));
    }
    if up.audience.is_empty() {
        return Err(ConfigError::new(at("audience"), "must not be empty"));
    }
    check_claims(&up.claims, &issuer, &at("claims"))?;
    let subject_prefix = match up.subject_prefix {
        Some(p) => p,
        None => default_prefix(&issuer),
    };
    check_subject_prefix(&subject_prefix, earlier, &at("subject_prefix"))?;
    Ok(Upstream {
        issuer,
        jwks_url: up.jwks_url,
        audience: up.audience,
        subject_prefix,
        claims: up.claims,
    })
}

/// A mapping may not set a claim the server owns, and no two upstream
/// claims may map onto one Tessera claim.
fn check_claims(
    claims: &BTreeMap<String, String>,
    issuer: &str,
    setting: &str,
) -> Result<(), ConfigError> {
    let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in claims {
        if crate::vocabulary::RESERVED_CLAIMS.contains(&to.as_str()) {
            return Err(ConfigError::new(
                setting,
                format!("{issuer}: claims may not set {to:?}: the server sets it"),
            ));
        }
        if let Some(other) = targets.insert(to, from) {
            return Err(ConfigError::new(
                setting,
                format!(
                    "{issuer}: {other:?} and {from:?} both map onto {to:?}; a token carries each claim once"
                ),
            ));
        }
    }
    Ok(())
}

/// A prefix is short, cannot be confused with the separator, and is no
/// `earlier` upstream's: each upstream's subjects are a namespace of their own.
fn check_subject_prefix(
    subject_prefix: &str,
    earlier: &[Upstream],
    setting: &str,
) -> Result<(), ConfigError> {
    if subject_prefix.is_empty()
        || subject_prefix.len() > MAX_PREFIX
        || subject_prefix.contains(SUBJECT_SEPARATOR)
        || subject_prefix.chars().any(char::is_control)
    {
        return Err(ConfigError::new(
            setting,
            format!("{subject_prefix:?} must be 1 to {MAX_PREFIX} characters without {SUBJECT_SEPARATOR:?} or control characters"),
        ));
    }
    if let Some(other) = earlier.iter().find(|o| o.subject_prefix == subject_prefix) {
        return Err(ConfigError::new(
            setting,
            format!(
                "{subject_prefix:?} is already {}'s: every upstream needs its own subject namespace (set subject_prefix)",
                other.issuer
            ),
        ));
    }
    Ok(())
}

/// The issuer without its scheme and trailing `/`: `https://login.example.com`
/// -> `login.example.com`, `https://kc.example.com/realms/a` ->
/// `kc.example.com/realms/a` (realms of one host stay apart).
fn default_prefix(issuer: &str) -> String {
    without_scheme(issuer)
        .unwrap_or(issuer)
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(issuer: &str, prefix: Option<&str>, claims: &[(&str, &str)]) -> RawUpstream {
        RawUpstream {
            issuer: issuer.to_owned(),
            jwks_url: None,
            audience: "tessera".to_owned(),
            subject_prefix: prefix.map(str::to_owned),
            claims: claims
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn subjects_are_namespaced_per_upstream() {
        let ups = validate(vec![
            raw("https://kc.example.com/realms/a/", None, &[]),
            raw("https://kc.example.com/realms/b", None, &[]),
            raw("https://tenant.eu.auth0.com", Some("auth0-eu"), &[]),
        ])
        .unwrap();
        let subs: Vec<String> = ups.iter().map(|u| u.subject("alice")).collect();
        assert_eq!(
            subs,
            [
                "kc.example.com/realms/a|alice",
                "kc.example.com/realms/b|alice",
                "auth0-eu|alice"
            ]
        );
    }

    #[test]
    fn ambiguous_federations_are_refused_and_named() {
        let cases = [
            (
                vec![
                    raw("https://a", Some("x"), &[]),
                    raw("https://b", Some("x"), &[]),
                ],
                "federation[1].subject_prefix",
                "already https://a's",
            ),
            (
                vec![raw("http://idp", None, &[]), raw("https://idp", None, &[])],
                "federation[1].subject_prefix",
                "\"idp\"",
            ),
            (
                vec![raw("https://a", Some("x|y"), &[])],
                "federation[0].subject_prefix",
                "without '|'",
            ),
            (
                vec![raw("https://a", Some(""), &[])],
                "federation[0].subject_prefix",
                "1 to 100",
            ),
            (
                vec![
                    raw("https://a", None, &[]),
                    raw("https://a", Some("z"), &[]),
                ],
                "federation[1].issuer",
                "configured twice",
            ),
            (
                vec![raw(
                    "https://a",
                    None,
                    &[("org", "tenant_id"), ("team", "tenant_id")],
                )],
                "federation[0].claims",
                "\"org\" and \"team\" both map onto \"tenant_id\"",
            ),
            (
                vec![raw("https://a", None, &[("org", "client_id")])],
                "federation[0].claims",
                "claims may not set \"client_id\"",
            ),
        ];
        for (ups, setting, text) in cases {
            let e = validate(ups).unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
            assert!(e.message.contains(text), "{e}");
        }
    }

    #[test]
    fn a_collision_names_the_mapping() {
        let up = validate(vec![raw(
            "https://a",
            None,
            &[("org", "tenant_id"), ("mail", "email")],
        )])
        .unwrap()
        .remove(0);
        let mut statics = Map::new();
        statics.insert("tier".into(), Value::from("gold"));
        assert_eq!(up.collision(&statics), None);
        statics.insert("tenant_id".into(), Value::from("acme"));
        assert_eq!(up.collision(&statics), Some(("org", "tenant_id")));
    }
}
