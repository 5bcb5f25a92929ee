//! The key-encryption key: private signing keys are stored sealed with
//! AES-256-GCM under it, with the key's kid as associated data so a sealed
//! blob cannot be moved to another row.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use tessera_jose::b64;
use zeroize::Zeroizing;

/// Why the key-encryption key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The file could not be read or created.
    #[error("key-encryption key file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error (not a `source`: the message already says it once).
        error: std::io::Error,
    },
    /// The file does not hold 32 bytes in base64url.
    #[error("key-encryption key file {0}: must hold 32 random bytes in base64url (43 characters)")]
    Format(String),
    /// The database holds keys but the KEK file is missing: a new KEK would
    /// seal new keys that no other node can open.
    #[error("key-encryption key file {0} is missing, but the database already holds keys sealed under a key-encryption key: copy the KEK file from the node that made them (keys.kek_file)")]
    Missing(String),
    /// The KEK does not open the database's check value.
    #[error("the key-encryption key in {0} is not the one the database's keys are sealed under: every node needs the same keys.kek_file")]
    Mismatch(String),
    /// A sealed key did not open: another KEK, or the row was altered.
    #[error("a stored private key does not open with this key-encryption key (another node's KEK, or an altered row)")]
    Open,
    /// The file may be read or written by others than its owner: anyone
    /// who reads it can open every private key in the database.
    #[error("key-encryption key file {path} is open to others than its owner (mode {mode:03o}): chmod 600 it; the KEK opens every private signing key")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The random generator or the cipher failed.
    #[error("key-encryption failed")]
    Crypto,
}

/// The AES-256-GCM key-encryption key.
pub struct Kek {
    key: LessSafeKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").finish_non_exhaustive()
    }
}

impl Kek {
    /// Reads the KEK from `path`, creating it (32 random bytes, mode 0600,
    /// never overwriting) when it does not exist.
    ///
    /// # Errors
    /// [`KekError::Io`] or [`KekError::Format`].
    pub fn load_or_create(path: &Path) -> Result<Self, KekError> {
        let io = |error| KekError::Io {
            path: path.display().to_string(),
            error,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                check_private(path).map_err(|e| match e {
                    Ok(mode) => KekError::Exposed {
                        path: path.display().to_string(),
                        mode,
                    },
                    Err(e) => io(e),
                })?;
                let bytes = b64::decode(text.trim().as_bytes())
                    .map(Zeroizing::new)
                    .map_err(|_| KekError::Format(path.display().to_string()))?;
                Self::from_bytes(&bytes).ok_or_else(|| KekError::Format(path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                SystemRandom::new()
                    .fill(bytes.as_mut())
                    .map_err(|_| KekError::Crypto)?;
                let text = Zeroizing::new(b64::encode(bytes.as_ref()));
                let mut file = create_private(path).map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.sync_all().map_err(io)?;
                Self::from_bytes(bytes.as_ref()).ok_or(KekError::Crypto)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Reads an existing KEK; never creates one.
    ///
    /// # Errors
    /// [`KekError::Missing`] when the file does not exist; as [`Kek::load_or_create`].
    pub fn load(path: &Path) -> Result<Self, KekError> {
        if !path.exists() {
            return Err(KekError::Missing(path.display().to_string()));
        }
        Self::load_or_create(path)
    }

    /// A KEK from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `plaintext` bound to `aad`: base64url of nonce || ciphertext || tag.
    ///
    /// # Errors
    /// [`KekError::Crypto`] when the random generator fails.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Crypto)?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut *buf,
            )
            .map_err(|_| KekError::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(b64::encode(&out))
    }

    /// Opens what [`Kek::seal`] sealed with the same `aad`.
    ///
    /// # Errors
    /// [`KekError::Open`] when the blob is altered, moved or from another KEK.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, KekError> {
        let raw = b64::decode(sealed.as_bytes()).map_err(|_| KekError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| KekError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Refuses a file that its group or others may read or write, as ssh and
/// PostgreSQL refuse a private key file: `Err(Ok(mode))` names the mode.
fn check_private(path: &Path) -> Result<(), Result<u32, std::io::Error>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).map_err(Err)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(Ok(mode))
    }
}

/// Creates `path` for writing with mode 0600; fails if it exists.
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let kek = Kek::load_or_create(&path).unwrap();
        let sealed = kek.seal("kid-1", b"private material").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(&*kek.open("kid-1", &sealed).unwrap(), b"private material");
        // Bound to its kid.
        assert!(matches!(kek.open("kid-2", &sealed), Err(KekError::Open)));
        // The file is reused, not regenerated.
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(&*again.open("kid-1", &sealed).unwrap(), b"private material");
        // Another KEK does not open it.
        let other = Kek::load_or_create(&dir.path().join("other")).unwrap();
        assert!(matches!(other.open("kid-1", &sealed), Err(KekError::Open)));
        // Tampering is detected.
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(kek.open("kid-1", &tampered), Err(KekError::Open)));
        assert_eq!(format!("{kek:?}"), "Kek { .. }");
    }

    #[cfg(unix)]
    #[test]
    fn file_is_private_and_format_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "too short").unwrap();
        assert!(matches!(
            Kek::load_or_create(&path),
            Err(KekError::Format(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_open_to_its_group_or_others_is_refused_and_left_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Kek::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KekError::Exposed { mode: m, .. } if m == mode),
                "{mode:o}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("{mode:o}")), "{message}");
            assert!(!message.contains(text.trim()), "the key is never printed");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                text,
                "left as it was"
            );
            assert!(matches!(Kek::load(&path), Err(KekError::Exposed { .. })));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Kek::load_or_create(&path).is_ok(), "{mode:o}");
        }
    }
}
