//! Lint: what is risky about a token, whether or not it verifies.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::alg::Algorithm;
use crate::claims::UnixTime;
use crate::error::Result;
use crate::jws::{decode_unverified, Unverified};

/// Default size budget of an access token, in bytes.
pub const DEFAULT_BUDGET: usize = 1024;

/// Default maximum lifetime of an access token.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth fixing; the token still works as intended.
    Warning,
    /// Must not be issued like this.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// One finding: a severity, a stable code and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Stable short code (`size`, `sensitive_claim`, `card_number`,
    /// `lifetime`, `symmetric_alg`, `alg_none`, `no_kid`, `no_jti`, `no_exp`).
    pub code: &'static str,
    /// One-line reason, naming claims but never printing their values.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.code, self.message)
    }
}

/// The lint policy.
#[derive(Clone, Debug)]
pub struct LintOptions {
    /// Size budget in bytes.
    pub max_bytes: usize,
    /// Longest acceptable access-token lifetime.
    pub max_lifetime: Duration,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_BUDGET,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// Lints a compact token (not verified). Findings are sorted errors first.
///
/// # Errors
/// `malformed` when the token is not well formed (see [`decode_unverified`]).
pub fn lint(token: &str, options: &LintOptions) -> Result<Vec<Finding>> {
    // Decode with a generous limit: an oversize token is a finding, not a failure.
    let decoded = decode_unverified(token, usize::MAX)?;
    Ok(lint_decoded(&decoded, options))
}

/// Lints an already decoded token.
pub fn lint_decoded(token: &Unverified, options: &LintOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, code, message: String| {
        out.push(Finding {
            severity,
            code,
            message,
        })
    };

    if token.len > options.max_bytes {
        add(
            Severity::Error,
            "size",
            format!(
                "token is {} bytes, over the {}-byte budget: it rides on every request ({} per 1,000 requests) and nears the 8 KiB header limit of common proxies",
                token.len,
                options.max_bytes,
                human_bytes(token.len.saturating_mul(1000))
            ),
        );
    }

    match token.header.get("alg").and_then(Value::as_str) {
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) if alg.is_symmetric() => add(
                Severity::Warning,
                "symmetric_alg",
                format!("{alg} uses a shared secret: every service that verifies can also mint tokens; prefer ES256 or EdDSA"),
            ),
            Some(_) => {}
            None => add(
                Severity::Error,
                "alg_none",
                format!("alg {:?} is not a signature algorithm any verifier should accept", crate::alg::truncate(name)),
            ),
        },
        None => add(Severity::Error, "alg_none", "header has no string \"alg\"".into()),
    }
    if !token.header.contains_key("kid") {
        add(
            Severity::Warning,
            "no_kid",
            "no \"kid\": verifiers cannot pick the key, and key rotation breaks them".into(),
        );
    }

    let reg = &token.registered;
    match reg.exp {
        None => add(
            Severity::Error,
            "no_exp",
            "no \"exp\": the token never expires".into(),
        ),
        Some(exp) => {
            let start = reg.iat.unwrap_or_else(UnixTime::now);
            let lifetime = exp.secs().saturating_sub(start.secs());
            let max = i64::try_from(options.max_lifetime.as_secs()).unwrap_or(i64::MAX);
            if lifetime > max {
                add(
                    Severity::Warning,
                    "lifetime",
                    format!(
                        "lifetime {} is over {} for an access token: a leaked token stays usable that long; use short tokens and refresh",
                        human_secs(lifetime),
                        human_secs(max)
                    ),
                );
            }
        }
    }
    if reg.jti.is_none() {
        add(
            Severity::Warning,
            "no_jti",
            "no \"jti\": this token cannot be revoked on its own".into(),
        );
    }

    out.extend(sensitive_claims(&token.claims));
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// The sensitive-claim findings alone: names such as password or ssn, and
/// values that look like payment card numbers. An authority runs this on
/// the claims it is configured to add, so such a token is never issued.
pub fn sensitive_claims(claims: &serde_json::Map<String, Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, value) in claims {
        sensitive(name, name, value, &mut |path, finding| {
            out.push(match finding {
                Sensitive::Name => Finding {
                    severity: Severity::Error,
                    code: "sensitive_claim",
                    message: format!("claim {path:?} looks sensitive: JWT payloads are only base64, readable by anyone holding the token"),
                },
                Sensitive::CardNumber => Finding {
                    severity: Severity::Error,
                    code: "card_number",
                    message: format!("claim {path:?} holds what looks like a payment card number (passes the Luhn check)"),
                },
            })
        });
    }
    out
}

enum Sensitive {
    Name,
    CardNumber,
}

const SENSITIVE_WORDS: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "ssn",
    "card",
    "cvv",
    "cvc",
    "iban",
    "pin",
    "passcode",
    "creditcard",
];

/// Splits a claim name into lowercase words (snake, kebab and camel case).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_sensitive_name(name: &str) -> bool {
    let words = words(name);
    let joined: String = words.concat();
    words.iter().any(|w| SENSITIVE_WORDS.contains(&w.as_str()))
        || [
            "password",
            "secret",
            "creditcard",
            "cardnumber",
            "socialsecurity",
        ]
        .iter()
        .any(|s| joined.contains(s))
}

/// Reports sensitive names and card numbers in `value`, the member `name`
/// found at `path` (dotted, for the message only: names may contain dots).
fn sensitive(path: &str, name: &str, value: &Value, report: &mut dyn FnMut(&str, Sensitive)) {
    if is_sensitive_name(name) {
        report(path, Sensitive::Name);
    }
    match value {
        Value::String(s) if looks_like_card(s, 13) => report(path, Sensitive::CardNumber),
        // 13-digit integers are mostly millisecond timestamps; start at 14.
        Value::Number(n)
            if n.as_u64()
                .is_some_and(|v| looks_like_card(&v.to_string(), 14)) =>
        {
            report(path, Sensitive::CardNumber)
        }
        Value::Array(items) => {
            for item in items {
                sensitive(path, name, item, report);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                sensitive(&format!("{path}.{k}"), k, v, report);
            }
        }
        _ => {}
    }
}

/// 13 to 19 digits (spaces and dashes allowed between) passing the Luhn check.
fn looks_like_card(s: &str, min_digits: usize) -> bool {
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return false;
    }
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(min_digits..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn human_bytes(n: usize) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

fn human_secs(s: i64) -> String {
    match s {
        s if s % 86_400 == 0 && s >= 86_400 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s >= 3600 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &serde_json::Value, claims: &serde_json::Value) -> String {
        format!(
            "{}.{}.{}",
            crate::b64::encode(header.to_string()),
            crate::b64::encode(claims.to_string()),
            crate::b64::encode([0u8; 8])
        )
    }

    fn codes(
        header: serde_json::Value,
        claims: serde_json::Value,
        max_bytes: usize,
    ) -> Vec<(Severity, &'static str)> {
        let options = LintOptions {
            max_bytes,
            ..LintOptions::default()
        };
        lint(&token(&header, &claims), &options)
            .unwrap()
            .into_iter()
            .map(|f| (f.severity, f.code))
            .collect()
    }

    #[test]
    fn a_good_access_token_has_no_findings() {
        let header = serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"});
        let claims = serde_json::json!({"sub": "u", "iat": 1000, "exp": 1900, "jti": "j"});
        assert_eq!(codes(header, claims, 1024), []);
    }

    #[test]
    fn each_risk_is_one_finding_with_its_severity() {
        use Severity::{Error, Warning};
        let good_header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let good = serde_json::json!({"iat": 1000, "exp": 1900, "jti": "j"});
        let with = |extra: serde_json::Value| {
            let mut c = good.clone();
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        type Case = (
            serde_json::Value,
            serde_json::Value,
            usize,
            Vec<(Severity, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (good_header.clone(), good.clone(), 50, vec![(Error, "size")]),
            (
                serde_json::json!({"alg": "none", "kid": "k1"}),
                good.clone(),
                1024,
                vec![(Error, "alg_none")],
            ),
            (
                serde_json::json!({"alg": "HS256", "kid": "k1"}),
                good.clone(),
                1024,
                vec![(Warning, "symmetric_alg")],
            ),
            (
                serde_json::json!({"alg": "ES256"}),
                good.clone(),
                1024,
                vec![(Warning, "no_kid")],
            ),
            (
                good_header.clone(),
                serde_json::json!({"iat": 1000, "jti": "j"}),
                1024,
                vec![(Error, "no_exp")],
            ),
            (
                good_header.clone(),
                with(serde_json::json!({"exp": 1000 + 3601})),
                1024,
                vec![(Warning, "lifetime")],
            ),
            (
                good_header.clone(),
                serde_json::json!({"iat": 1000, "exp": 1900}),
                1024,
                vec![(Warning, "no_jti")],
            ),
            (
                good_header.clone(),
                with(serde_json::json!({"user": {"password": "x"}})),
                1024,
                vec![(Error, "sensitive_claim")],
            ),
            (
                good_header.clone(),
                with(serde_json::json!({"note": "4111-1111-1111-1111"})),
                1024,
                vec![(Error, "card_number")],
            ),
        ];
        for (header, claims, max, expected) in cases {
            assert_eq!(codes(header, claims.clone(), max), expected, "{claims}");
        }
    }

    #[test]
    fn findings_name_claims_but_never_print_their_values() {
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let claims = serde_json::json!({"exp": 1, "jti": "j", "client_secret": "s3cr3t-value", "pan": "4111111111111111"});
        let findings = lint(&token(&header, &claims), &LintOptions::default()).unwrap();
        assert!(findings.iter().any(|f| f.message.contains("client_secret")));
        for f in &findings {
            let text = f.to_string();
            assert!(
                !text.contains("s3cr3t") && !text.contains("41111111"),
                "{text}"
            );
        }
    }

    #[test]
    fn dotted_and_multiline_claim_names_are_checked_and_quoted() {
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let claims =
            serde_json::json!({"exp": 1, "jti": "j", "password.v2": "x", "a\nerror: fake": 1});
        let findings = lint(&token(&header, &claims), &LintOptions::default()).unwrap();
        assert!(findings
            .iter()
            .any(|f| f.code == "sensitive_claim" && f.message.contains("\"password.v2\"")));
        for f in &findings {
            assert!(!f.to_string().contains('\n'), "{f}");
        }
    }

    #[test]
    fn size_finding_says_what_it_costs() {
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let claims = serde_json::json!({"exp": 1, "jti": "j", "blob": "x".repeat(2000)});
        let findings = lint(&token(&header, &claims), &LintOptions::default()).unwrap();
        let size = findings.iter().find(|f| f.code == "size").unwrap();
        assert!(
            size.message.contains("per 1,000 requests"),
            "{}",
            size.message
        );
        assert!(
            size.message.contains("MB") || size.message.contains("kB"),
            "{}",
            size.message
        );
    }

    #[test]
    fn luhn_recognises_test_card_numbers() {
        assert!(looks_like_card("4111 1111 1111 1111", 13));
        assert!(looks_like_card("5500-0000-0000-0004", 13));
        assert!(!looks_like_card("4111 1111 1111 1112", 13));
        assert!(!looks_like_card("1700000000", 13));
        assert!(!looks_like_card("user_4111111111111111", 13));
    }

    #[test]
    fn sensitive_names_split_on_case_and_separators() {
        for name in [
            "password",
            "userPassword",
            "client_secret",
            "ssn",
            "card_number",
            "CVV",
            "creditCard",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in [
            "sub",
            "email",
            "tenant_id",
            "shipping",
            "scope",
            "roles",
            "discard_after",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }
}
