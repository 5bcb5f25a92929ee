//! SHA-256 of a token or secret, written once: how the authority stores
//! and finds what it hands out (opaque and refresh tokens, client secrets,
//! the admin token) and how verifiers and the gateway key their caches.
//!
//! The stored form is [`encoded`] (unpadded base64url of the 32 bytes):
//! changing it would orphan every hash already in a database.

/// The 32-byte SHA-256 of `token`.
#[must_use]
pub fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The SHA-256 of `token`, base64url without padding: the stored form.
#[must_use]
pub fn encoded(token: &str) -> String {
    tessera_jose::b64::encode(digest(token))
}

/// Whether the SHA-256 of `presented` is `stored`, compared in constant
/// time. A 256-bit random secret needs no slow password hash: nobody can
/// guess it, and a stolen hash does not reveal it.
#[must_use]
pub fn matches(presented: &str, stored: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(&digest(presented), stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256() {
        // FIPS 180-2 test vector "abc".
        assert_eq!(
            tessera_jose::b64::encode(digest("abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn encoded_is_the_stored_form() {
        // Hashes already in databases were written this way; they must
        // still be found.
        assert_eq!(
            encoded("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert_eq!(encoded("").len(), 43);
    }

    #[test]
    fn matches_only_the_same_secret() {
        let stored = digest("tcs_secret");
        assert!(matches("tcs_secret", &stored));
        assert!(!matches("tcs_secreT", &stored));
        assert!(!matches("tcs_secret", &stored[..31]));
        assert!(!matches("tcs_secret", &[]));
    }
}
