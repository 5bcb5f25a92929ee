//! The JWKS response of the current key ring. The key lifecycle publishes
//! the key set as a JSON document and its version (`KeyRing::jwks`,
//! `KeyRing::version`); the body and the strong ETag served for them are
//! built here, once per key set rather than once per request.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::body::Bytes;
use axum::http::HeaderValue;

use crate::lifecycle::KeyRing;

/// The response parts of one published key set.
#[derive(Debug)]
pub(super) struct ServedJwks {
    version: Arc<str>,
    /// The JWKS document.
    pub(super) body: Bytes,
    /// Its strong ETag: the key set's version, quoted.
    pub(super) etag: HeaderValue,
}

impl ServedJwks {
    fn new(ring: &KeyRing) -> Self {
        // The version is base64url, so the quoted tag is always a valid
        // header value; the fallback is never taken.
        let etag = HeaderValue::try_from(format!("\"{}\"", ring.version))
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        Self {
            version: Arc::clone(&ring.version),
            body: Bytes::copy_from_slice(&ring.jwks),
            etag,
        }
    }
}

/// The parts served for the last key set seen, replaced when a request
/// meets a ring of another version.
#[derive(Debug, Default)]
pub(super) struct JwksCache {
    current: ArcSwapOption<ServedJwks>,
}

impl JwksCache {
    /// The body and ETag of `ring`'s key set.
    pub(super) fn for_ring(&self, ring: &KeyRing) -> Arc<ServedJwks> {
        if let Some(served) = self
            .current
            .load()
            .as_ref()
            .filter(|s| s.version == ring.version)
        {
            return Arc::clone(served);
        }
        let served = Arc::new(ServedJwks::new(ring));
        self.current.store(Some(Arc::clone(&served)));
        served
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::JwksCache;
    use crate::lifecycle::{jwks_version, KeyRing};

    fn ring(document: &str) -> KeyRing {
        KeyRing {
            verify_keys: tessera_jose::KeySet::new(Vec::new()),
            signers: HashMap::new(),
            primary: None,
            jwks: document.as_bytes().into(),
            version: jwks_version(document.as_bytes()).into(),
            next_change: None,
        }
    }

    #[test]
    fn body_is_the_document_and_etag_its_quoted_version() {
        let cache = JwksCache::default();
        let served = cache.for_ring(&ring(r#"{"keys":[]}"#));
        assert_eq!(&served.body[..], br#"{"keys":[]}"#);
        assert_eq!(served.etag, "\"ljjRGRRzXQByAC3U1nxzSg\"");
    }

    #[test]
    fn built_once_per_key_set() {
        let cache = JwksCache::default();
        let first = cache.for_ring(&ring(r#"{"keys":[]}"#));
        // Another ring (a reload) publishing the same document.
        let again = cache.for_ring(&ring(r#"{"keys":[]}"#));
        assert!(Arc::ptr_eq(&first, &again));
        let changed = cache.for_ring(&ring(r#"{"keys":[{}]}"#));
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(&changed.body[..], br#"{"keys":[{}]}"#);
        assert_ne!(changed.etag, first.etag);
        assert!(Arc::ptr_eq(
            &changed,
            &cache.for_ring(&ring(r#"{"keys":[{}]}"#))
        ));
    }
}
