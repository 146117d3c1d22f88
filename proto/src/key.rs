//! The cluster key: 32 random bytes shared by the master, the workers and the
//! clients of one cluster. Every connection proves knowledge of it (see
//! [`crate::noise`] and [`crate::handshake`]); it never crosses the wire.
//!
//! On disk it is one line of 64 hex digits. The master creates it in its data
//! directory on first start ([`ClusterKey::load_or_create`], file mode 0600);
//! workers and clients read a copy of that file ([`ClusterKey::load`]).

use std::{
    fmt,
    io::{self, Write},
    path::{Path, PathBuf},
};

use hmac::Mac;

/// Length of a cluster key in bytes.
pub const KEY_LEN: usize = 32;

/// The file name the master gives its key inside its data directory.
pub const KEY_FILE_NAME: &str = "cluster.key";

/// The environment variable that names the key file (same as `--key-file`).
pub const KEY_FILE_ENV: &str = "TESSERA_KEY_FILE";

pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A cluster's shared secret. `Debug` shows only its [fingerprint](Self::fingerprint).
#[derive(Clone)]
pub struct ClusterKey([u8; KEY_LEN]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({})", self.fingerprint())
    }
}

/// The key file could not be read, parsed or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the cluster key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} is not a tessera cluster key: {reason} (expected one line of 64 hex digits, as in the master's cluster.key)",
        path.display()
    )]
    Format { path: PathBuf, reason: String },
    #[error("cannot create the cluster key file {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
}

impl ClusterKey {
    /// A fresh random key (from the operating system's CSPRNG via `rand`'s
    /// thread-local generator).
    pub fn generate() -> Self {
        ClusterKey(rand::random())
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        ClusterKey(bytes)
    }

    /// A short public name for this key: the first 8 bytes of
    /// HMAC-SHA256(key, "tessera key fingerprint"), in hex. It tells keys
    /// apart (e.g. as a hint in a service advertisement) without revealing
    /// anything about the key, and no handshake proof can be derived from it.
    pub fn fingerprint(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"tessera key fingerprint");
        hex(&mac.finalize().into_bytes()[..8])
    }

    /// The pre-shared key every connection's Noise handshake mixes in:
    /// HMAC-SHA256(key, "tessera noise psk"), so the key itself is used for
    /// nothing but deriving (the fingerprint uses another label).
    pub(crate) fn psk(&self) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(b"tessera noise psk");
        mac.finalize().into_bytes().into()
    }

    /// The master's web page token (`--http`): the first 16 bytes of
    /// HMAC-SHA256(key, "tessera web token"), in hex. Whoever holds the key
    /// can open the page; the token reveals nothing of the key, and no
    /// handshake proof can be derived from it.
    pub fn web_token(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"tessera web token");
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// An HMAC-SHA256 instance keyed with this key.
    pub(crate) fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// The key as the file holds it: 64 hex digits and a newline.
    pub fn to_file_text(&self) -> String {
        let mut s = hex(&self.0);
        s.push('\n');
        s
    }

    /// Parses a key file's text (64 hex digits; surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != 2 * KEY_LEN {
            return Err(format!("found {} characters", text.len()));
        }
        let mut key = [0u8; KEY_LEN];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => key[i] = (hi * 16 + lo) as u8,
                _ => return Err("it contains characters that are not hex digits".into()),
            }
        }
        Ok(ClusterKey(key))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClusterKey::parse(&text).map_err(|reason| KeyError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Reads the key file at `path`, or creates it with a fresh key (mode
    /// 0600 on Unix; parent directories created) if there is none. Returns
    /// the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match ClusterKey::load(path) {
            Err(KeyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other.map(|k| (k, false)),
        }
        let key = ClusterKey::generate();
        match key.write_new(path) {
            Ok(()) => Ok((key, true)),
            // Someone else created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                ClusterKey::load(path).map(|k| (k, false))
            }
            Err(source) => Err(KeyError::Create {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the key to a new file readable by its owner only (mode 0600
    /// on Unix; parent directories created); fails if the file exists.
    pub fn create_file(&self, path: &Path) -> Result<(), KeyError> {
        self.write_new(path).map_err(|source| KeyError::Create {
            path: path.to_path_buf(),
            source,
        })
    }

    fn write_new(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(self.to_file_text().as_bytes())?;
        file.sync_all()
    }
}

/// A warning when a key file can be read by users other than its owner
/// (Unix only; `None` elsewhere or when it cannot tell).
pub fn permissions_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "the cluster key file {} can be read by other users (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_text_round_trips() {
        let key = ClusterKey::generate();
        let text = key.to_file_text();
        assert_eq!(text.len(), 65);
        let back = ClusterKey::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(back.0, key.0);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert_eq!(ClusterKey::parse("abc").unwrap_err(), "found 3 characters");
        assert_eq!(
            ClusterKey::parse(&"zz".repeat(32)).unwrap_err(),
            "it contains characters that are not hex digits"
        );
        // A multi-byte character must not be split or accepted.
        assert!(ClusterKey::parse(&format!("é{}", "0".repeat(62))).is_err());
    }

    #[test]
    fn fingerprints_differ_between_keys_and_hide_the_key() {
        let a = ClusterKey::from_bytes([1; 32]);
        let b = ClusterKey::from_bytes([2; 32]);
        // HMAC-SHA256([1; 32], "tessera key fingerprint"), by Python's `hmac`.
        assert_eq!(a.fingerprint(), "79777444a710b8d2");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert!(!format!("{a:?}").contains("0101"));
    }

    #[test]
    fn the_web_token_is_derived_from_the_key_and_hides_it() {
        let a = ClusterKey::from_bytes([1; 32]);
        // HMAC-SHA256([1; 32], "tessera web token")[..16], by Python's `hmac`.
        assert_eq!(a.web_token(), "d457349ff78a7e560d5dbf963d8b0e5d");
        assert_ne!(a.web_token(), ClusterKey::from_bytes([2; 32]).web_token());
        assert_ne!(a.web_token()[..16], a.fingerprint());
    }

    #[test]
    fn load_or_create_creates_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(KEY_FILE_NAME);
        let (first, created) = ClusterKey::load_or_create(&path).unwrap();
        assert!(created);
        let (second, created) = ClusterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.0, second.0);
        assert_eq!(ClusterKey::load(&path).unwrap().0, first.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(permissions_warning(&path), None);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(permissions_warning(&path).unwrap().contains("chmod 600"));
        }
    }

    #[test]
    fn a_corrupt_key_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::write(&path, "not a key").unwrap();
        let err = ClusterKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::Format { .. }), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
