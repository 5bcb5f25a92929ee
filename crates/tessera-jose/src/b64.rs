//! base64url exactly as RFC 7515 §2: URL-safe alphabet, no padding, no
//! non-zero trailing bits. Anything else is `malformed`.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::error::{Error, Result};

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes `input` as unpadded base64url.
pub fn encode(input: impl AsRef<[u8]>) -> String {
    STRICT.encode(input)
}

/// Appends the unpadded base64url encoding of `input` to `out`.
pub fn encode_into(input: impl AsRef<[u8]>, out: &mut String) {
    STRICT.encode_string(input, out);
}

/// Decodes canonical unpadded base64url.
///
/// # Errors
/// `malformed` for padding, characters outside the URL-safe alphabet, an
/// impossible length, or non-zero trailing bits (a non-canonical encoding).
pub fn decode(input: impl AsRef<[u8]>) -> Result<Vec<u8>> {
    STRICT.decode(input).map_err(|_| invalid())
}

/// Decodes canonical unpadded base64url, appending to `out`.
///
/// # Errors
/// As [`decode`].
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    STRICT.decode_vec(input, out).map_err(|_| invalid())
}

fn invalid() -> Error {
    Error::malformed("invalid base64url (RFC 7515 §2: unpadded, URL-safe, canonical)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn rejects_padding_standard_alphabet_and_trailing_bits() {
        for bad in [
            "QQ==", "QQ=", "a+b/", "QR", "Q", "QUJ", "QUI=", "a b", "ab\n",
        ] {
            assert_eq!(
                decode(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad:?}"
            );
        }
        // "QUI" is the canonical form of "AB"; "QUJ" above sets a trailing bit.
        assert_eq!(decode("QUI").unwrap(), b"AB");
    }

    #[test]
    fn rfc7515_example_header() {
        // RFC 7515 §3.3
        let decoded = decode("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9").unwrap();
        assert_eq!(decoded, b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let enc = encode(&bytes);
            prop_assert!(!enc.contains('='));
            prop_assert_eq!(decode(&enc).unwrap(), bytes);
        }

        #[test]
        fn non_canonical_trailing_bits_rejected(bytes in proptest::collection::vec(any::<u8>(), 1..100), flip in 1u8..16) {
            // When the length leaves 2 or 4 spare bits, setting any of them yields
            // a different string that would decode to the same bytes in a lax decoder.
            let enc = encode(&bytes);
            let spare = match bytes.len() % 3 { 1 => 4, 2 => 2, _ => 0 };
            prop_assume!(spare > 0);
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let last = *enc.as_bytes().last().unwrap();
            let idx = alphabet.iter().position(|&c| c == last).unwrap() as u8;
            let mask = (1u8 << spare) - 1;
            let bits = flip & mask;
            prop_assume!(bits != 0);
            let mut changed = enc.into_bytes();
            let n = changed.len();
            changed[n - 1] = alphabet[(idx ^ bits) as usize];
            prop_assert_eq!(decode(&changed).unwrap_err().kind(), ErrorKind::Malformed);
        }

        #[test]
        fn padding_or_foreign_characters_rejected(bytes in proptest::collection::vec(any::<u8>(), 1..60), pos in any::<prop::sample::Index>(), c in prop::sample::select(vec![b'=', b'+', b'/', b' ', b'.', b'\n', 0xC3])) {
            let mut enc = encode(&bytes).into_bytes();
            let at = pos.index(enc.len() + 1);
            enc.insert(at, c);
            prop_assert_eq!(decode(&enc).unwrap_err().kind(), ErrorKind::Malformed);
        }
    }
}
