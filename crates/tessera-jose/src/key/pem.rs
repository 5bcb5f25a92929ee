//! PEM (RFC 7468) decoding of one labelled block.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Decodes the first `-----BEGIN {label}-----` block of `pem`.
pub(crate) fn decode(pem: &str, label: &str) -> Result<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin) else {
        // Name the label that is there, but nothing after it: on a one-line
        // PEM the base64 body (key material) follows right away.
        let found = pem.split("-----BEGIN ").nth(1).and_then(|rest| {
            let other = rest.split("-----").next()?;
            let plain = other.len() <= 40
                && other
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
            plain.then_some(other)
        });
        return Err(Error::invalid_key(match found {
            Some(other) => format!("expected a PEM \"{label}\" block, found \"{other}\""),
            None => format!("expected a PEM \"{label}\" block"),
        }));
    };
    let body_start = start + begin.len();
    let body_len = pem[body_start..]
        .find(&end)
        .ok_or_else(|| Error::invalid_key(format!("PEM block \"{label}\" has no END line")))?;
    let text = &pem[body_start..body_start + body_len];
    // Sized up front so no reallocation leaves key material behind.
    let mut body = Zeroizing::new(String::with_capacity(text.len()));
    body.extend(text.chars().filter(|c| !c.is_ascii_whitespace()));
    STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| Error::invalid_key("PEM body is not valid base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_block_and_names_wrong_label() {
        let pem = "junk\n-----BEGIN PUBLIC KEY-----\nAAEC\nAw==\n-----END PUBLIC KEY-----\n";
        assert_eq!(&*decode(pem, "PUBLIC KEY").unwrap(), &[0, 1, 2, 3]);
        let err = decode(pem, "PRIVATE KEY").unwrap_err();
        assert!(err.message().contains("found \"PUBLIC KEY\""), "{err}");
        assert!(decode("-----BEGIN PUBLIC KEY-----\nAA", "PUBLIC KEY").is_err());
        // A one-line PEM: the label is named, the body after it never is.
        let one_line =
            "-----BEGIN EC PRIVATE KEY-----MHcCAQEEIDFK3secret-----END EC PRIVATE KEY-----";
        let err = decode(one_line, "PRIVATE KEY").unwrap_err();
        assert!(err.message().contains("found \"EC PRIVATE KEY\""), "{err}");
        assert!(!err.message().contains("MHcC"), "{err}");
        assert!(decode(
            "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
            "PUBLIC KEY"
        )
        .is_err());
    }
}
