//! The format of Tessera's opaque handles: opaque access tokens (`tso_`)
//! and refresh tokens (`tsr_`). One place mints them (the authority) and
//! recognises them (the authority and the gateway).
//!
//! A handle is its prefix, 256 random bits (43 base64url characters) and a
//! check value (8 base64url characters: the first 48 bits of SHA-256 over
//! the prefix and the random part), 55 characters in all; the layout of
//! GitHub's token format, with a longer check. The check lets a holder of
//! no secret refuse a made-up or mistyped handle without asking anyone: a
//! random string passes with probability 2^-48. It is not a MAC, so it
//! does not stop someone who computes it on purpose: the gateway also
//! bounds the exchanges in flight, and the authority still looks every
//! well-formed handle up (only hashed handles are stored).
//!
//! ```
//! use tessera_verify::handle::{self, Handle, HandleError, Kind};
//!
//! let minted = handle::mint(Kind::Refresh);
//! assert_eq!(Handle::parse(&minted).map(|h| h.kind()), Ok(Kind::Refresh));
//! let forged = format!("tsr_{}", "A".repeat(51));
//! assert_eq!(Handle::parse(&forged), Err(HandleError::Malformed(Kind::Refresh)));
//! assert_eq!(Handle::parse("eyJhbGciOi..."), Err(HandleError::NotAHandle));
//! ```

use std::fmt;

/// What a handle stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An opaque access token (`tso_`): valid through introspection, and
    /// exchanged for a JWT by the gateway's phantom mode.
    Opaque,
    /// A refresh token (`tsr_`).
    Refresh,
}

impl Kind {
    /// Its prefix, separator included.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Opaque => "tso_",
            Self::Refresh => "tsr_",
        }
    }

    const ALL: [Self; 2] = [Self::Opaque, Self::Refresh];
}

/// Random part: 32 bytes as unpadded base64url.
const RANDOM_CHARS: usize = 43;
/// Check value: 6 bytes (48 bits) as base64url.
const CHECK_BYTES: usize = 6;
const CHECK_CHARS: usize = 8;
/// The length of every handle (all prefixes are 4 bytes).
pub const LEN: usize = 4 + RANDOM_CHARS + CHECK_CHARS;

/// Why a token is not a handle worth a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// No handle prefix: perhaps a JWT, or anything else.
    #[error("not a Tessera handle")]
    NotAHandle,
    /// A handle prefix, but not a handle this format mints: wrong length,
    /// characters outside base64url, or a check value that does not hold.
    #[error("malformed handle")]
    Malformed(Kind),
}

/// A well-formed handle (its check value holds). Its `Debug` names only
/// the kind: the text is a credential.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Handle<'a> {
    kind: Kind,
    text: &'a str,
}

impl fmt::Debug for Handle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<'a> Handle<'a> {
    /// Reads `token` as a handle.
    ///
    /// # Errors
    /// [`HandleError::NotAHandle`] when it has no handle prefix (the caller
    /// may try it as a JWT); [`HandleError::Malformed`] when it has one but
    /// its shape or check value is wrong (refuse it without a lookup).
    pub fn parse(token: &'a str) -> Result<Self, HandleError> {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
            .ok_or(HandleError::NotAHandle)?;
        let rest = &token[kind.prefix().len()..];
        let malformed = HandleError::Malformed(kind);
        if rest.len() != RANDOM_CHARS + CHECK_CHARS || !rest.bytes().all(is_base64url) {
            return Err(malformed);
        }
        let (random, check) = rest.split_at(RANDOM_CHARS);
        let presented = tessera_jose::b64::decode(check).map_err(|_| malformed)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &check_value(kind, random))
            .map_err(|_| malformed)?;
        Ok(Self { kind, text: token })
    }

    /// What it stands for.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The whole handle, prefix included.
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

/// A new handle of `kind`: 256 bits from the system generator. The caller
/// keeps it only as long as it must (the authority stores its hash).
pub fn mint(kind: Kind) -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut random = [0u8; 32];
    // The system generator does not fail on supported platforms; if it
    // ever did, a predictable handle would be unsafe, so stop.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut random)
        .expect("system random generator failed");
    mint_from(kind, &random)
}

fn mint_from(kind: Kind, random: &[u8; 32]) -> String {
    let mut out = String::with_capacity(LEN);
    out.push_str(kind.prefix());
    tessera_jose::b64::encode_into(random, &mut out);
    let check = check_value(kind, &out[kind.prefix().len()..]);
    tessera_jose::b64::encode_into(check, &mut out);
    out
}

/// The first 48 bits of SHA-256(prefix || random part): the prefix is
/// covered so that a handle of one kind never checks as another.
fn check_value(kind: Kind, random: &str) -> [u8; CHECK_BYTES] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(kind.prefix().as_bytes());
    ctx.update(random.as_bytes());
    let digest = ctx.finish();
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&digest.as_ref()[..CHECK_BYTES]);
    out
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_handles_parse_as_their_kind() {
        for kind in Kind::ALL {
            let h = mint(kind);
            assert_eq!(h.len(), LEN);
            assert!(h.starts_with(kind.prefix()));
            let parsed = Handle::parse(&h).unwrap();
            assert_eq!((parsed.kind(), parsed.as_str()), (kind, h.as_str()));
            assert!(!format!("{parsed:?}").contains(&h[4..]));
        }
        assert_ne!(mint(Kind::Opaque), mint(Kind::Opaque));
    }

    #[test]
    fn a_known_vector_keeps_the_format_stable() {
        // Authorities and gateways of different versions must agree.
        // (computed independently: SHA-256 of "tso_" and 43 "A"s, first 6
        // bytes, base64url.)
        let h = mint_from(Kind::Opaque, &[0u8; 32]);
        assert_eq!(h, "tso_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAATmMs6nsN");
    }

    #[test]
    fn made_up_and_altered_handles_are_malformed() {
        let good = mint(Kind::Opaque);
        assert!(Handle::parse(&good).is_ok(), "positive control");
        let bad = |t: &str| Handle::parse(t).map(|h| h.kind());
        let malformed: Result<Kind, _> = Err(HandleError::Malformed(Kind::Opaque));
        // The random part, or the check, altered by one character.
        for i in [4, 20, 46, 47, 54] {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert_eq!(bad(&altered), malformed, "byte {i}");
        }
        // Right prefix, random body of the right length, wrong check.
        assert_eq!(bad(&format!("tso_{}", "x".repeat(51))), malformed);
        // The old, unchecked layout (prefix + 43 characters) and others.
        assert_eq!(bad(&good[..47]), malformed);
        assert_eq!(bad("tso_"), malformed);
        assert_eq!(bad("tso_unknown"), malformed);
        assert_eq!(bad(&format!("{good}A")), malformed);
        let mut spaced = good.clone();
        spaced.replace_range(10..11, " ");
        assert_eq!(bad(&spaced), malformed);
        // Multi-byte characters never panic on a slice boundary.
        assert_eq!(bad(&format!("tso_{}", "é".repeat(30))), malformed);
        // A handle of one kind relabelled as the other.
        let relabelled = format!("tsr_{}", &good[4..]);
        assert_eq!(bad(&relabelled), Err(HandleError::Malformed(Kind::Refresh)));
        // Not a handle at all.
        assert_eq!(
            bad("eyJhbGciOiJFUzI1NiJ9.e30.sig"),
            Err(HandleError::NotAHandle)
        );
        assert_eq!(bad("TSO_abc"), Err(HandleError::NotAHandle));
        assert_eq!(bad(""), Err(HandleError::NotAHandle));
    }
}
