//! `tessera token sign | verify | decode | lint`.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use serde_json::{Map, Value};
use tessera_jose::lint::{lint_decoded, LintOptions, Severity};
use tessera_jose::{
    decode_unverified, verify_at, Algorithm, Error, Jwk, JwkSet, KeySet, Signer, UnixTime,
    Validation,
};

use crate::cli::TokenCommand;
use crate::{exit, io};

/// Largest token `decode` and `lint` inspect (verification keeps the core's 8 KiB).
const INSPECT_LIMIT: usize = 1 << 20;

pub(crate) fn run(cmd: TokenCommand) -> Result<u8> {
    match cmd {
        TokenCommand::Sign {
            key,
            iss,
            sub,
            aud,
            ttl,
            claim,
            typ,
        } => {
            let jwk =
                Jwk::parse(&io::read_text(&key)?).with_context(|| format!("{}", key.display()))?;
            if !jwk.allows_signing() {
                bail!(
                    "{}: the key's \"use\" or \"key_ops\" does not allow signing",
                    key.display()
                );
            }
            let key = jwk
                .to_signing_key(None)
                .with_context(|| format!("{}: cannot sign with this key", key.display()))?;
            let claims = SignClaims {
                iss,
                sub,
                aud,
                ttl,
                extra: claim,
            }
            .build()?;
            let token = Signer::new(key)
                .typ(&typ)
                .sign(&claims)
                .context("signing")?;
            io::print(&token)?;
            Ok(exit::OK)
        }
        TokenCommand::Verify {
            jwks,
            iss,
            aud,
            alg,
            leeway,
            typ,
            token,
        } => {
            let keys = load_keys(&jwks, &alg)?;
            let mut policy = Validation::new().leeway(leeway);
            if let Some(iss) = iss {
                policy = policy.issuer(iss);
            }
            policy = match aud {
                Some(aud) => policy.audience(aud),
                None => policy.ignore_audience(),
            };
            if let Some(typ) = typ {
                policy = policy.typ(typ);
            }
            if !alg.is_empty() {
                policy = policy.algorithms(alg);
            }
            let token = io::token(token)?;
            match verify_at::<Map<String, Value>>(&token, &keys, &policy, UnixTime::now()) {
                Ok(verified) => {
                    // The header verified; decoding it again for display fails
                    // only if the two parsers disagree, which is a bug to report.
                    let header = decode_unverified(&token, INSPECT_LIMIT)
                        .map(|d| d.header)
                        .context("re-reading the verified header")?;
                    let out = serde_json::json!({ "header": header, "claims": verified.claims });
                    io::print(&serde_json::to_string(&out)?)?;
                    Ok(exit::OK)
                }
                Err(e) => Ok(rejected(&e)),
            }
        }
        TokenCommand::Decode { token } => {
            let token = io::token(token)?;
            match decode_unverified(&token, INSPECT_LIMIT) {
                Ok(d) => {
                    let out = serde_json::json!({ "header": d.header, "claims": d.claims, "verified": false });
                    io::print(&serde_json::to_string(&out)?)?;
                    Ok(exit::OK)
                }
                Err(e) => Ok(rejected(&e)),
            }
        }
        TokenCommand::Lint { token, max_bytes } => {
            let token = io::token(token)?;
            let decoded = match decode_unverified(&token, INSPECT_LIMIT) {
                Ok(d) => d,
                Err(e) => return Ok(rejected(&e)),
            };
            let options = LintOptions {
                max_bytes,
                ..LintOptions::default()
            };
            let findings = lint_decoded(&decoded, &options);
            let failed = findings.iter().any(|f| f.severity == Severity::Error);
            let code = if failed { exit::REJECTED } else { exit::OK };
            let mut lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
            if lines.is_empty() {
                lines.push(format!("ok: {} bytes, no findings", decoded.len));
            }
            // The verdict stands even when nobody reads the findings: a CI gate
            // such as `lint | head -1` must not pass a token with errors.
            match io::print(&lines.join("\n")) {
                Err(e) if io::is_broken_pipe(&e) => Ok(code),
                other => other.map(|()| code),
            }
        }
    }
}

fn rejected(e: &Error) -> u8 {
    eprintln!("rejected: {}: {}", e.code(), e.message());
    exit::REJECTED
}

fn load_keys(source: &str, allowed: &[Algorithm]) -> Result<KeySet> {
    let text = io::read_jwks_source(source)?;
    let set = JwkSet::parse(&text).with_context(|| format!("invalid JWKS {source}"))?;
    if set.keys.is_empty() {
        bail!("JWKS {source} holds no keys");
    }
    // Keys left out by --alg, use or key_ops are not an error: a token that
    // needed one is rejected with a stable code (alg_not_allowed, unknown_kid).
    KeySet::from_jwks(&set, allowed).with_context(|| format!("invalid JWKS {source}"))
}

/// The claims `token sign` puts in a token.
struct SignClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    ttl: Duration,
    extra: Vec<String>,
}

impl SignClaims {
    fn build(self) -> Result<Map<String, Value>> {
        let now = UnixTime::now();
        let ttl = i64::try_from(self.ttl.as_secs()).context("--ttl is too large")?;
        let exp = now.secs().checked_add(ttl).context("--ttl is too large")?;
        let mut claims = Map::new();
        if let Some(iss) = self.iss {
            claims.insert("iss".into(), iss.into());
        }
        if let Some(sub) = self.sub {
            claims.insert("sub".into(), sub.into());
        }
        match self.aud.len() {
            0 => {}
            1 => {
                claims.insert("aud".into(), self.aud[0].clone().into());
            }
            _ => {
                claims.insert("aud".into(), self.aud.into());
            }
        }
        claims.insert("iat".into(), now.secs().into());
        claims.insert("exp".into(), exp.into());
        claims.insert("jti".into(), random_uuid()?.into());
        for pair in &self.extra {
            let (name, value) = claim(pair)?;
            claims.insert(name, value);
        }
        Ok(claims)
    }
}

/// One `--claim NAME=VALUE`: VALUE is JSON where it parses, else a string.
pub(super) fn claim(pair: &str) -> Result<(String, Value)> {
    let Some((name, value)) = pair.split_once('=') else {
        bail!("--claim {pair:?}: expected NAME=VALUE");
    };
    if name.is_empty() {
        bail!("--claim {pair:?}: the claim name is empty");
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

/// A random (version 4) UUID, for `jti`.
fn random_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}
