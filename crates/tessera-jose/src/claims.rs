//! Registered claims (RFC 7519 §4.1), typed, and NumericDate.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json;

/// Seconds since the Unix epoch (a JWT NumericDate, RFC 7519 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(i64);

impl UnixTime {
    /// The given second count.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// The current time from the system clock.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self(secs)
    }

    /// The second count.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    /// `self - d`, saturating at the start of time.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    /// Parses a raw JSON NumericDate: an integer, or a finite number with a
    /// fraction or exponent (truncated towards minus infinity). Strings,
    /// booleans, null and values beyond a 64-bit second count are `malformed`.
    pub(crate) fn from_json(text: &str, claim: &'static str) -> Result<Self> {
        Self::parse_json(text, claim, false)
    }

    /// As [`UnixTime::from_json`], rounding a fraction up: for `nbf`, where
    /// rounding down would accept a token up to a second early.
    pub(crate) fn from_json_ceil(text: &str, claim: &'static str) -> Result<Self> {
        Self::parse_json(text, claim, true)
    }

    /// Parses a raw JSON NumericDate: an integer, or a finite number with a
    /// fraction or exponent, rounded down (or up, with `ceil`). Decimal
    /// fractions are rounded exactly, not through f64. Strings, booleans,
    /// null and values beyond a 64-bit second count are `malformed`.
    fn parse_json(text: &str, claim: &'static str, ceil: bool) -> Result<Self> {
        let bad = || Error::malformed(format!("\"{claim}\" is not a valid NumericDate"));
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(bad());
        }
        if !text.contains(['e', 'E']) {
            let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
            let whole = whole.parse::<i64>().map_err(|_| bad())?;
            let inexact = fraction.bytes().any(|b| b != b'0');
            let negative = text.starts_with('-');
            let adjusted = match (inexact, ceil, negative) {
                (true, false, true) => whole.checked_sub(1),
                (true, true, false) => whole.checked_add(1),
                _ => Some(whole),
            };
            return adjusted.map(Self).ok_or_else(bad);
        }
        let f: f64 = text.parse().map_err(|_| bad())?;
        // 2^63 is exactly representable; anything at or beyond it does not fit.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let rounded = if ceil { f.ceil() } else { f.floor() };
        if !rounded.is_finite() || !(-LIMIT..LIMIT).contains(&rounded) {
            return Err(bad());
        }
        #[allow(clippy::cast_possible_truncation)]
        Ok(Self(rounded as i64))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience<'a> {
    /// `"aud": "x"`
    One(Cow<'a, str>),
    /// `"aud": ["x", "y"]`
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    /// Iterates over the audience values.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(s) => (Some(s.as_ref()), &[][..]),
            Self::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }

    /// True when `value` is one of the audiences.
    pub fn contains(&self, value: &str) -> bool {
        self.iter().any(|a| a == value)
    }

    /// An owned copy.
    pub fn into_owned(self) -> Audience<'static> {
        match self {
            Self::One(s) => Audience::One(Cow::Owned(s.into_owned())),
            Self::Many(v) => {
                Audience::Many(v.into_iter().map(|s| Cow::Owned(s.into_owned())).collect())
            }
        }
    }
}

/// A registered claim name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Claim {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
}

impl Claim {
    /// Every registered claim, in RFC 7519 §4.1 order.
    pub const ALL: [Claim; 7] = [
        Self::Iss,
        Self::Sub,
        Self::Aud,
        Self::Exp,
        Self::Nbf,
        Self::Iat,
        Self::Jti,
    ];

    /// The claim's JSON name.
    pub fn name(self) -> &'static str {
        REGISTERED_NAMES[self as usize]
    }
}

/// JSON names of the registered claims, indexed by [`Claim`].
pub(crate) const REGISTERED_NAMES: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// The registered claims of a token, typed. Strings borrow from the
/// decoded payload where they have no escapes; [`RegisteredClaims::into_owned`]
/// detaches them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegisteredClaims<'a> {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<Cow<'a, str>>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Cow<'a, str>>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience<'a>>,
    /// Expiration time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixTime>,
    /// Not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<UnixTime>,
    /// JWT ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<Cow<'a, str>>,
}

impl<'a> RegisteredClaims<'a> {
    /// True when the claim is present.
    pub fn has(&self, claim: Claim) -> bool {
        match claim {
            Claim::Iss => self.iss.is_some(),
            Claim::Sub => self.sub.is_some(),
            Claim::Aud => self.aud.is_some(),
            Claim::Exp => self.exp.is_some(),
            Claim::Nbf => self.nbf.is_some(),
            Claim::Iat => self.iat.is_some(),
            Claim::Jti => self.jti.is_some(),
        }
    }

    /// An owned copy.
    pub fn into_owned(self) -> RegisteredClaims<'static> {
        let own = |s: Option<Cow<'a, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        RegisteredClaims {
            iss: own(self.iss),
            sub: own(self.sub),
            aud: self.aud.map(Audience::into_owned),
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            jti: own(self.jti),
        }
    }

    /// Builds the typed claims from the raw members found by the scanner,
    /// without copying strings that have no escapes.
    pub(crate) fn from_raw(raw: &[Option<&'a str>; 7]) -> Result<Self> {
        let string = |i: usize| json::string_member(raw[i], "", REGISTERED_NAMES[i]);
        let date = |i: usize| {
            raw[i]
                .map(|r| {
                    // nbf rounds up and exp down: a fraction never widens validity.
                    if i == 4 {
                        UnixTime::from_json_ceil(r, REGISTERED_NAMES[i])
                    } else {
                        UnixTime::from_json(r, REGISTERED_NAMES[i])
                    }
                })
                .transpose()
        };
        let aud = match raw[2] {
            None => None,
            Some(r) => Some(match json::raw_str(r) {
                Some(s) => Audience::One(s),
                None => Audience::Many(
                    serde_json::from_str::<Vec<String>>(r)
                        .map_err(|_| {
                            Error::malformed("\"aud\" must be a string or an array of strings")
                        })?
                        .into_iter()
                        .map(Cow::Owned)
                        .collect(),
                ),
            }),
        };
        Ok(Self {
            iss: string(0)?,
            sub: string(1)?,
            aud,
            exp: date(3)?,
            nbf: date(4)?,
            iat: date(5)?,
            jti: string(6)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn numeric_date_accepts_integers_and_finite_fractions_only() {
        assert_eq!(
            UnixTime::from_json("1700000000", "exp").unwrap().secs(),
            1_700_000_000
        );
        assert_eq!(
            UnixTime::from_json("1700000000.9", "exp").unwrap().secs(),
            1_700_000_000
        );
        assert_eq!(
            UnixTime::from_json("1.7e9", "exp").unwrap().secs(),
            1_700_000_000
        );
        assert_eq!(UnixTime::from_json("-1.5", "exp").unwrap().secs(), -2);
        assert_eq!(
            UnixTime::from_json("9223372036854775807", "exp")
                .unwrap()
                .secs(),
            i64::MAX
        );
        for bad in [
            "\"1700000000\"",
            "true",
            "null",
            "{}",
            "[1]",
            "9223372036854775808",
            "1e19",
            "1e400",
            "-1e400",
        ] {
            assert_eq!(
                UnixTime::from_json(bad, "exp").unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn fractions_are_rounded_exactly_and_never_widen_validity() {
        // f64 would round 1700000000.9999999 up to 1700000001.
        assert_eq!(
            UnixTime::from_json("1700000000.9999999", "exp")
                .unwrap()
                .secs(),
            1_700_000_000
        );
        assert_eq!(
            UnixTime::from_json_ceil("1700000000.0000001", "nbf")
                .unwrap()
                .secs(),
            1_700_000_001
        );
        assert_eq!(
            UnixTime::from_json_ceil("1700000000.000", "nbf")
                .unwrap()
                .secs(),
            1_700_000_000
        );
        assert_eq!(UnixTime::from_json("-0.5", "exp").unwrap().secs(), -1);
        assert_eq!(UnixTime::from_json_ceil("-0.5", "nbf").unwrap().secs(), 0);
        assert_eq!(UnixTime::from_json_ceil("1.5e0", "nbf").unwrap().secs(), 2);
        assert!(UnixTime::from_json_ceil("9223372036854775807.5", "nbf").is_err());
    }

    #[test]
    fn audience_one_or_many() {
        let many = Audience::Many(vec!["a".into(), "b".into()]);
        assert!(many.contains("b") && !many.contains("c"));
        assert_eq!(serde_json::to_string(&many).unwrap(), r#"["a","b"]"#);
        let one = Audience::One("a".into());
        assert_eq!(one.iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""a""#);
    }
}
