//! Just enough DER to read SubjectPublicKeyInfo, PKCS#8 PrivateKeyInfo and
//! PKCS#1 RSA keys, and to write a PKCS#1 RSAPublicKey. Every length is
//! checked; nothing here panics on hostile input.

use crate::error::{Error, Result};

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;

pub(crate) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
pub(crate) const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
pub(crate) const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
pub(crate) const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

fn bad() -> Error {
    Error::invalid_key("malformed DER key structure")
}

/// A cursor over DER-encoded bytes.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self(input)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads one TLV and returns its tag and contents.
    pub(crate) fn any(&mut self) -> Result<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first().ok_or_else(bad)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok((tag, value))
    }

    /// Reads one TLV that must carry `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8]> {
        match self.any()? {
            (t, v) if t == tag => Ok(v),
            _ => Err(bad()),
        }
    }

    /// Reads an INTEGER as unsigned big-endian bytes without leading zeros.
    pub(crate) fn unsigned(&mut self) -> Result<&'a [u8]> {
        let v = self.expect(INTEGER)?;
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(bad());
        }
        Ok(strip_zeros(v))
    }

    /// Reads a BIT STRING without unused bits.
    pub(crate) fn bit_string(&mut self) -> Result<&'a [u8]> {
        match self.expect(BIT_STRING)?.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err(bad()),
        }
    }
}

pub(crate) fn strip_zeros(mut v: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = v {
        v = rest;
    }
    v
}

/// The algorithm of a SubjectPublicKeyInfo or PrivateKeyInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    Ec(crate::Curve),
    Ed25519,
}

/// Reads an AlgorithmIdentifier.
pub(crate) fn algorithm_identifier(r: &mut Reader<'_>) -> Result<KeyType> {
    let mut alg = Reader::new(r.expect(SEQUENCE)?);
    let oid = alg.expect(OID)?;
    if oid == OID_RSA {
        return Ok(KeyType::Rsa);
    }
    if oid == OID_ED25519 {
        return Ok(KeyType::Ed25519);
    }
    if oid == OID_EC {
        let curve = alg.expect(OID)?;
        return match curve {
            c if c == OID_P256 => Ok(KeyType::Ec(crate::Curve::P256)),
            c if c == OID_P384 => Ok(KeyType::Ec(crate::Curve::P384)),
            c if c == OID_P521 => Ok(KeyType::Ec(crate::Curve::P521)),
            _ => Err(Error::invalid_key("unsupported elliptic curve")),
        };
    }
    Err(Error::invalid_key(
        "unsupported key algorithm (RSA, EC P-256/P-384/P-521 and Ed25519 are supported)",
    ))
}

/// Parses a SubjectPublicKeyInfo into its type and key bits.
pub(crate) fn spki(der: &[u8]) -> Result<(KeyType, &[u8])> {
    let mut outer = Reader::new(der);
    let mut seq = Reader::new(outer.expect(SEQUENCE)?);
    if !outer.is_empty() {
        return Err(bad());
    }
    let kind = algorithm_identifier(&mut seq)?;
    let bits = seq.bit_string()?;
    Ok((kind, bits))
}

/// Parses a PKCS#8 PrivateKeyInfo into its type and inner private key.
pub(crate) fn pkcs8(der: &[u8]) -> Result<(KeyType, &[u8])> {
    let mut outer = Reader::new(der);
    let mut seq = Reader::new(outer.expect(SEQUENCE)?);
    seq.expect(INTEGER)?;
    let kind = algorithm_identifier(&mut seq)?;
    let inner = seq.expect(OCTET_STRING)?;
    Ok((kind, inner))
}

/// Parses a PKCS#1 RSAPublicKey into (n, e).
pub(crate) fn rsa_public(der: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut seq = Reader::new(Reader::new(der).expect(SEQUENCE)?);
    let n = seq.unsigned()?;
    let e = seq.unsigned()?;
    Ok((n, e))
}

/// The members of a PKCS#1 RSAPrivateKey, as unsigned big-endian bytes.
pub(crate) struct RsaPrivate<'a> {
    pub(crate) n: &'a [u8],
    pub(crate) e: &'a [u8],
    pub(crate) d: &'a [u8],
    pub(crate) p: &'a [u8],
    pub(crate) q: &'a [u8],
    pub(crate) dp: &'a [u8],
    pub(crate) dq: &'a [u8],
    pub(crate) qi: &'a [u8],
}

/// Parses a PKCS#1 RSAPrivateKey (two-prime only).
pub(crate) fn rsa_private(der: &[u8]) -> Result<RsaPrivate<'_>> {
    let mut seq = Reader::new(Reader::new(der).expect(SEQUENCE)?);
    if seq.unsigned()? != [] as [u8; 0] {
        return Err(Error::invalid_key("multi-prime RSA keys are not supported"));
    }
    Ok(RsaPrivate {
        n: seq.unsigned()?,
        e: seq.unsigned()?,
        d: seq.unsigned()?,
        p: seq.unsigned()?,
        q: seq.unsigned()?,
        dp: seq.unsigned()?,
        dq: seq.unsigned()?,
        qi: seq.unsigned()?,
    })
}

/// Number of significant bits of an unsigned big-endian integer.
pub(crate) fn bit_len(v: &[u8]) -> usize {
    let v = strip_zeros(v);
    match v.first() {
        None => 0,
        Some(&b) => v.len() * 8 - b.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_oversized_lengths_are_errors_not_panics() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x85, 0, 0, 0, 0, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x80],
        ] {
            assert!(Reader::new(input).any().is_err(), "{input:?}");
            assert!(spki(input).is_err());
            assert!(pkcs8(input).is_err());
        }
    }

    #[test]
    fn bit_len_counts_significant_bits() {
        assert_eq!(bit_len(&[0, 0x01, 0]), 9);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[]), 0);
    }
}
