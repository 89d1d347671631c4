//! Encrypted config values, compatible with PyMS.
//!
//! Any key that starts with `enc_` (any case, at any depth, in any layer) holds a Fernet
//! token. Once the layers are merged, each token is decrypted with the key from the key file
//! and the plaintext is exposed under the key without the prefix: `db.enc_password` becomes
//! `db.password`. This is PyMS's convention, so tokens made by `pyms encrypt` (or by Python's
//! `cryptography.fernet.Fernet(key).encrypt(...)`) work unchanged, and the key file is the
//! same: the urlsafe base64 of 32 bytes on one line.
//!
//! Errors name the key file, the config key and its location, and the fix. They never contain
//! a token, a plaintext or key material; neither does anything logged here (nothing is).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::error::ConfigDiagnostic;
use super::source::Layered;

/// Env var naming the key file.
pub const KEY_FILE_VAR: &str = "MS_KEY_FILE";

/// The key file used when [`KEY_FILE_VAR`] is not set, relative to the working directory
/// (as in PyMS).
pub const DEFAULT_KEY_FILE: &str = "key.key";

/// The prefix that marks an encrypted value, matched in any case.
const PREFIX: &str = "enc_";

/// What the redacted views show instead of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// The key file the chassis uses: the path in `MS_KEY_FILE`, else `./key.key`.
pub fn key_file_from_env() -> PathBuf {
    match std::env::var_os(KEY_FILE_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_KEY_FILE),
    }
}

/// Why a secret could not be decrypted or a key could not be loaded.
///
/// No variant carries a token, a plaintext or key material, so every message is safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The key file does not exist.
    #[error(
        "key file {path} not found ({KEY_FILE_VAR} names the key file; without it, \
         ./{DEFAULT_KEY_FILE} is used): point {KEY_FILE_VAR} at the key the values were \
         encrypted with, or create a key with `ms-chassis keygen --out {path}` and encrypt \
         the values again with `ms-chassis encrypt`",
        path = path.display()
    )]
    KeyFileMissing {
        /// The path tried.
        path: PathBuf,
    },
    /// The key file exists but cannot be read.
    #[error("cannot read key file {path}: {source}", path = path.display())]
    KeyFileUnreadable {
        /// The path tried.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file does not hold a Fernet key.
    #[error(
        "key file {path} does not hold a Fernet key ({reason}): expected the urlsafe base64 \
         of 32 bytes on one line, as written by `ms-chassis keygen` or PyMS",
        path = path.display()
    )]
    KeyMalformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong, without quoting the file.
        reason: String,
    },
    /// The value is not a Fernet token at all (perhaps a plaintext put under an `enc_` key).
    #[error(
        "the value is not a Fernet token; store the token that `ms-chassis encrypt` prints, \
         not the plaintext"
    )]
    NotAToken,
    /// The value is shaped like a Fernet token but this key does not decrypt it.
    #[error(
        "the token does not decrypt with the key in {path}: it was encrypted with another key \
         or altered; encrypt the value again with `ms-chassis encrypt --key-file {path}`",
        path = path.display()
    )]
    WrongKey {
        /// The key file used.
        path: PathBuf,
    },
    /// The token decrypts, but not to UTF-8 text.
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
}

/// A Fernet key loaded from a PyMS-style key file.
///
/// ```
/// use ms_chassis::config::SecretKey;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("key.key");
/// std::fs::write(&path, SecretKey::generate()).unwrap();
/// let key = SecretKey::from_file(&path)?;
/// let token = key.encrypt(b"s3cret");
/// assert_eq!(key.decrypt_str(&token)?, "s3cret");
/// # Ok::<(), ms_chassis::config::SecretError>(())
/// ```
#[derive(Clone)]
pub struct SecretKey {
    fernet: fernet::Fernet,
    path: PathBuf,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// The text of a new key file: the urlsafe base64 of 32 random bytes and a newline.
    pub fn generate() -> String {
        let mut key = fernet::Fernet::generate_key();
        key.push('\n');
        key
    }

    /// Reads a key file: urlsafe base64 of 32 bytes on one line; surrounding whitespace
    /// (such as a trailing newline) is ignored.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref().to_path_buf();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::KeyFileMissing { path });
            }
            Err(source) => return Err(SecretError::KeyFileUnreadable { path, source }),
        };
        let malformed = |reason: &str| SecretError::KeyMalformed {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("it is not text"))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(malformed("it is empty"));
        }
        if text.contains(char::is_whitespace) {
            return Err(malformed("it holds more than one line or word"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| malformed("it is not urlsafe base64"))?;
        if raw.len() != 32 {
            return Err(malformed(&format!("it decodes to {} bytes", raw.len())));
        }
        let fernet = fernet::Fernet::new(text).ok_or_else(|| malformed("it is not a key"))?;
        Ok(Self { fernet, path })
    }

    /// The key file this key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts `plaintext` into a Fernet token, which Python's `cryptography` (and PyMS)
    /// decrypts with the same key file.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.fernet.encrypt(plaintext)
    }

    /// Decrypts a Fernet token. Tokens never expire (as in PyMS); whitespace around the
    /// token is ignored.
    pub fn decrypt(&self, token: &str) -> Result<Vec<u8>, SecretError> {
        let token = token.trim();
        if !looks_like_token(token) {
            return Err(SecretError::NotAToken);
        }
        self.fernet
            .decrypt(token)
            .map_err(|_| SecretError::WrongKey {
                path: self.path.clone(),
            })
    }

    /// Decrypts a Fernet token whose plaintext is UTF-8 text.
    pub fn decrypt_str(&self, token: &str) -> Result<String, SecretError> {
        String::from_utf8(self.decrypt(token)?).map_err(|_| SecretError::NotUtf8)
    }
}

/// Fernet's layout: version 0x80, 8-byte timestamp, 16-byte IV, whole AES blocks, 32-byte
/// HMAC. Checked apart from decryption so that "not a token" and "wrong key" read differently.
fn looks_like_token(token: &str) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')) else {
        return false;
    };
    const FIXED: usize = 1 + 8 + 16 + 32;
    raw.first() == Some(&0x80) && raw.len() >= FIXED + 16 && (raw.len() - FIXED).is_multiple_of(16)
}

/// The values decrypted at load time: where they are, so that every error message and
/// redacted view can leave them out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    /// Dotted paths of the decrypted values (without the prefix): `app.db.password`.
    paths: BTreeSet<String>,
}

impl Secrets {
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    pub(crate) fn is_secret(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// Removes from messages about a key every value of `tree` that the redacted view hides
    /// at, above or below that key: a type error quotes the value it found, and a decrypted
    /// value, a header, a key named like a password or a URL's password must not be shown
    /// there either. The redacted view decides what is hidden, so an error shows no more
    /// than `config check --print` would. Messages about other keys cannot contain them.
    pub(crate) fn scrub(&self, diagnostics: &mut [ConfigDiagnostic], tree: &Value) {
        if diagnostics.iter().all(|d| d.key.is_none()) {
            return;
        }
        let mut hidden = Vec::new();
        redact_walk(&mut tree.clone(), "", self, &mut hidden);
        // Longest first, so that a value containing another is replaced whole.
        hidden.sort_by_key(|h| std::cmp::Reverse(h.value.len()));
        for d in diagnostics {
            let Some(key) = d.key.as_deref() else {
                continue;
            };
            for h in &hidden {
                if related_paths(&h.path, key) || related_paths(key, &h.path) {
                    d.message = h.remove_from(&d.message);
                }
            }
        }
    }
}

/// A scalar that the redacted view does not show as it is.
#[derive(Debug)]
struct Hidden {
    /// Its dotted path.
    path: String,
    /// The value as text: a string as it is, a number or boolean as written.
    value: String,
    /// What the view shows instead.
    shown: String,
}

impl Hidden {
    /// `message` with the value replaced by what the view shows, in the forms a message
    /// quotes it: `"…"` (a string's `Debug`, as serde quotes one), `` `…` `` (serde's
    /// numbers and booleans), or bare. A value hidden whole reads `<redacted>`, unquoted;
    /// one hidden in part (a URL) stays quoted. The bare form is replaced only from 4
    /// characters, so that a short value (`1`) does not garble the rest of the message.
    fn remove_from(&self, message: &str) -> String {
        if self.value.is_empty() {
            return message.to_owned();
        }
        let (quoted, ticked) = if self.shown == REDACTED {
            (REDACTED.to_owned(), REDACTED.to_owned())
        } else {
            (format!("{:?}", self.shown), format!("`{}`", self.shown))
        };
        let mut out = message
            .replace(&format!("{:?}", self.value), &quoted)
            .replace(&format!("`{}`", self.value), &ticked);
        if self.value.chars().count() >= 4 {
            out = out.replace(&self.value, &self.shown);
        }
        out
    }
}

/// Whether `inner` is `outer` or lies under it.
fn related_paths(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// One step from a node to a child.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// An `enc_` key found in the merged tree.
#[derive(Debug)]
struct Encrypted {
    /// Steps from the root to the mapping that holds the key.
    parent: Vec<Step>,
    parent_dotted: String,
    key: String,
}

impl Encrypted {
    fn dotted(&self) -> String {
        join(&self.parent_dotted, &self.key)
    }

    fn plain_key(&self) -> &str {
        &self.key[PREFIX.len()..]
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn is_encrypted_key(key: &str) -> bool {
    key.get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

fn find_encrypted(value: &Value, steps: &mut Vec<Step>, dotted: &str, out: &mut Vec<Encrypted>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if is_encrypted_key(key) {
                    // An encrypted value is a token, never a tree: do not look inside it.
                    out.push(Encrypted {
                        parent: steps.clone(),
                        parent_dotted: dotted.to_owned(),
                        key: key.clone(),
                    });
                    continue;
                }
                steps.push(Step::Key(key.clone()));
                find_encrypted(child, steps, &join(dotted, key), out);
                steps.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                steps.push(Step::Index(i));
                find_encrypted(child, steps, &format!("{dotted}[{i}]"), out);
                steps.pop();
            }
        }
        _ => {}
    }
}

fn mapping_at<'a>(root: &'a mut Value, steps: &[Step]) -> &'a mut Map<String, Value> {
    let mut node = root;
    for step in steps {
        node = match step {
            Step::Key(k) => node.get_mut(k.as_str()),
            Step::Index(i) => node.get_mut(*i),
        }
        .expect("path found by find_encrypted");
    }
    node.as_object_mut().expect("parent of a key is a mapping")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Decrypts every `enc_` key in the merged tree in place: the plaintext goes under the key
/// without the prefix, and the `enc_` key is removed (also when it fails, so that nothing
/// downstream sees a token). Reads the key file only if there is something to decrypt.
pub(crate) fn decrypt_in_place(
    layered: &mut Layered,
    key_file: &Path,
) -> (Secrets, Vec<ConfigDiagnostic>) {
    let mut found = Vec::new();
    find_encrypted(&layered.value, &mut Vec::new(), "", &mut found);
    let mut secrets = Secrets::default();
    let mut diagnostics = Vec::new();
    if found.is_empty() {
        return (secrets, diagnostics);
    }
    let diagnostic = |layered: &Layered, e: &Encrypted, message: String| ConfigDiagnostic {
        location: layered.origin_of(&e.dotted()).map(ToString::to_string),
        key: Some(e.dotted()),
        message,
    };

    let key = match SecretKey::from_file(key_file) {
        Ok(key) => Some(key),
        Err(error) => {
            let others: Vec<String> = found[1..].iter().map(Encrypted::dotted).collect();
            let also = if others.is_empty() {
                String::new()
            } else {
                format!(" (also needed by {})", others.join(", "))
            };
            diagnostics.push(diagnostic(
                layered,
                &found[0],
                format!("cannot decrypt{also}: {error}"),
            ));
            None
        }
    };

    // Two keys that would expose the same name: an explicit `password` beside
    // `enc_password`, or `enc_password` beside `ENC_password`. An embedded default is no
    // conflict: the decrypted value replaces it like any other layer's value.
    let mut claimed: HashMap<(String, String), String> = HashMap::new();
    let mut conflicts: Vec<Option<String>> = Vec::with_capacity(found.len());
    for e in &found {
        let parent = mapping_at(&mut layered.value, &e.parent);
        let plain = e.plain_key().to_owned();
        let set =
            parent.contains_key(&plain) && !layered.is_default(&join(&e.parent_dotted, &plain));
        let conflict = if set {
            Some(plain.clone())
        } else {
            claimed
                .get(&(e.parent_dotted.clone(), plain.clone()))
                .cloned()
        };
        claimed
            .entry((e.parent_dotted.clone(), plain))
            .or_insert_with(|| e.key.clone());
        conflicts.push(conflict);
    }

    for (e, conflict) in found.iter().zip(conflicts) {
        let dotted = e.dotted();
        let token = mapping_at(&mut layered.value, &e.parent).remove(&e.key);
        let Some(key) = &key else { continue };
        if e.plain_key().is_empty() {
            let message = "an `enc_` key needs a name after the prefix, such as `enc_password`";
            diagnostics.push(diagnostic(layered, e, message.to_owned()));
            continue;
        }
        if let Some(other) = conflict {
            let other_path = join(&e.parent_dotted, &other);
            let at = layered
                .origin_of(&other_path)
                .map(|o| format!(" (at {o})"))
                .unwrap_or_default();
            let plain_path = join(&e.parent_dotted, e.plain_key());
            diagnostics.push(diagnostic(
                layered,
                e,
                format!(
                    "`{}` is exposed as `{plain_path}` once decrypted, but `{other_path}`{at} \
                     is set too; keep only one of them",
                    e.key
                ),
            ));
            continue;
        }
        let token = match token {
            Some(Value::String(token)) => token,
            other => {
                let found = other.as_ref().map_or("nothing", kind);
                diagnostics.push(diagnostic(
                    layered,
                    e,
                    format!(
                        "expected a Fernet token (a string made by `ms-chassis encrypt`), \
                         found {found}"
                    ),
                ));
                continue;
            }
        };
        match key.decrypt_str(&token) {
            Ok(plaintext) => {
                let plain_path = join(&e.parent_dotted, e.plain_key());
                mapping_at(&mut layered.value, &e.parent)
                    .insert(e.plain_key().to_owned(), Value::String(plaintext));
                layered.move_origin(&dotted, &plain_path);
                secrets.paths.insert(plain_path);
            }
            Err(error) => {
                diagnostics.push(diagnostic(layered, e, format!("cannot decrypt: {error}")));
            }
        }
    }
    (secrets, diagnostics)
}

/// Whether a key name suggests a secret, in any case: it contains password, passwd,
/// secret, token, key, credential, authorization or cookie (so `api_key`, `x-api-key`,
/// `apikey`, `proxy-authorization` and `set-cookie` are all caught), or one of its words
/// (split at `-`, `_` and `.`) is `auth`.
pub(crate) fn is_sensitive_name(key: &str) -> bool {
    const WORDS: [&str; 8] = [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "credential",
        "authorization",
        "cookie",
    ];
    let key = key.to_ascii_lowercase();
    WORDS.iter().any(|w| key.contains(w)) || key.split(['-', '_', '.']).any(|w| w == "auth")
}

/// Whether a key names a mapping of HTTP headers: `headers` (such as `tracing.headers`), or
/// a name ending in `_headers` or `-headers`. Every value under such a mapping is redacted,
/// whatever the header is called: collectors and APIs take credentials in headers of
/// their own naming (`x-honeycomb-team`, `dd-api-key`, `signoz-access-token`). A list
/// under such a key (`propagate_headers: [x-tenant-id]`) holds names, not values, and is
/// shown.
pub(crate) fn is_header_map_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "headers" || key.ends_with("_headers") || key.ends_with("-headers")
}

/// `scheme://user:password@host/...` with the password replaced by `<redacted>`; `None`
/// for a string that carries no password in a URL.
fn redact_url_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!(
        "{scheme}://{user}:{REDACTED}@{}",
        &rest[userinfo.len() + 1..]
    ))
}

/// `s` fit to show in a message, a log line or an endpoint: a URL's password replaced by
/// `<redacted>`, anything else as it is.
pub(crate) fn shown_url(s: &str) -> std::borrow::Cow<'_, str> {
    redact_url_password(s).map_or(s.into(), Into::into)
}

/// The merged tree as it may be shown: every decrypted value, every non-null value under a
/// [sensitive key name](is_sensitive_name) and every value in a
/// [mapping of headers](is_header_map_name) replaced by `<redacted>`; passwords in URLs
/// (`http://user:pw@host`) too.
pub(crate) fn redact(value: &Value, secrets: &Secrets) -> Value {
    let mut out = value.clone();
    redact_walk(&mut out, "", secrets, &mut Vec::new());
    out
}

/// Redacts `value` (at dotted `path`) in place, pushing each scalar it hides onto `hidden`.
fn redact_walk(value: &mut Value, path: &str, secrets: &Secrets, hidden: &mut Vec<Hidden>) {
    match value {
        Value::String(s) => {
            if let Some(safe) = redact_url_password(s) {
                hidden.push(Hidden {
                    path: path.to_owned(),
                    value: std::mem::replace(s, safe.clone()),
                    shown: safe,
                });
            }
        }
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let p = join(path, key);
                if secrets.is_secret(&p) || is_sensitive_name(key) {
                    hide_all(child, &p, hidden);
                } else if is_header_map_name(key) && child.is_object() {
                    // Every header's value, not the header names.
                    if let Value::Object(headers) = child {
                        for (name, v) in headers.iter_mut() {
                            hide_all(v, &join(&p, name), hidden);
                        }
                    }
                } else {
                    redact_walk(child, &p, secrets, hidden);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                redact_walk(child, &format!("{path}[{i}]"), secrets, hidden);
            }
        }
        _ => {}
    }
}

/// Replaces `value` (at dotted `path`), unless it is `null`, by `<redacted>`, pushing each
/// scalar under it onto `hidden`. A `null` stays: it shows that nothing is set, and hides
/// nothing.
fn hide_all(value: &mut Value, path: &str, hidden: &mut Vec<Hidden>) {
    fn scalars(value: &Value, path: &str, hidden: &mut Vec<Hidden>) {
        let text = match value {
            Value::Null => return,
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            Value::Object(map) => {
                for (k, v) in map {
                    scalars(v, &join(path, k), hidden);
                }
                return;
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    scalars(v, &format!("{path}[{i}]"), hidden);
                }
                return;
            }
        };
        hidden.push(Hidden {
            path: path.to_owned(),
            value: text,
            shown: REDACTED.to_owned(),
        });
    }
    if !value.is_null() {
        scalars(value, path, hidden);
        *value = Value::String(REDACTED.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::{Source, parse_yaml};

    fn key_in(dir: &Path) -> (PathBuf, SecretKey) {
        let path = dir.join("key.key");
        std::fs::write(&path, SecretKey::generate()).unwrap();
        let key = SecretKey::from_file(&path).unwrap();
        (path, key)
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url_password("http://ann:pw@db:5432/x?y=z").as_deref(),
            Some("http://ann:<redacted>@db:5432/x?y=z")
        );
        assert_eq!(redact_url_password("http://ann@db/x"), None);
        assert_eq!(redact_url_password("http://db/a:b@c"), None);
        assert_eq!(redact_url_password("no url"), None);
        let tree = serde_json::json!({ "clients": { "b": { "url": "https://u:p@h" } } });
        let out = redact(&tree, &Secrets::default());
        assert_eq!(out["clients"]["b"]["url"], "https://u:<redacted>@h");
    }

    #[test]
    fn enc_keys_are_found_in_any_case_and_at_any_depth() {
        let v = serde_json::json!({
            "ENC_A": "t", "b": {"Enc_c": "t", "list": [{"enc_d": "t"}]}, "enc": "x"
        });
        let mut found = Vec::new();
        find_encrypted(&v, &mut Vec::new(), "", &mut found);
        let mut paths: Vec<_> = found.iter().map(Encrypted::dotted).collect();
        paths.sort();
        assert_eq!(paths, ["ENC_A", "b.Enc_c", "b.list[0].enc_d"]);
    }

    #[test]
    fn the_rest_of_the_name_keeps_its_case_as_in_pyms() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_in(dir.path());
        let yaml = format!("app:\n  ENC_Password: {}\n", key.encrypt(b"pw"));
        let mut layered = parse_yaml(&yaml, Source::Inline).unwrap();
        let (secrets, diagnostics) = decrypt_in_place(&mut layered, &path);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(layered.value["app"]["Password"], "pw");
        assert_eq!(secrets.paths().collect::<Vec<_>>(), ["app.Password"]);
        assert_eq!(
            layered.origin_of("app.Password").unwrap().to_string(),
            "inline config:2"
        );
    }

    #[test]
    fn two_enc_keys_for_one_name_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_in(dir.path());
        let t = key.encrypt(b"pw");
        let yaml = format!("app:\n  enc_pw: {t}\n  ENC_pw: {t}\n");
        let mut layered = parse_yaml(&yaml, Source::Inline).unwrap();
        let (_, diagnostics) = decrypt_in_place(&mut layered, &path);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        // Mapping order decides which one is reported; the message names the other.
        let (reported, other) = match diagnostics[0].key.as_deref() {
            Some("app.ENC_pw") => ("ENC_pw", "app.enc_pw"),
            Some("app.enc_pw") => ("enc_pw", "app.ENC_pw"),
            k => panic!("{k:?}"),
        };
        let m = &diagnostics[0].message;
        assert!(
            m.contains(&format!("`{reported}` is exposed as `app.pw`")),
            "{m}"
        );
        assert!(m.contains(&format!("`{other}` (at inline config:")), "{m}");
        assert_eq!(layered.value["app"]["pw"], "pw");
    }

    #[test]
    fn token_shape_tells_plaintext_from_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = key_in(dir.path());
        assert!(matches!(
            key.decrypt("hunter2"),
            Err(SecretError::NotAToken)
        ));
        let other = tempfile::tempdir().unwrap();
        let (_, other) = key_in(other.path());
        assert!(matches!(
            key.decrypt(&other.encrypt(b"x")),
            Err(SecretError::WrongKey { .. })
        ));
    }

    #[test]
    fn sensitive_names() {
        for k in [
            "password",
            "DB_PASSWORD",
            "passwd",
            "apiKey",
            "apikey",
            "api-key",
            "x-api-key",
            "X_API_KEY",
            "client_secret",
            "token",
            "credentials",
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "set-cookie",
            "Set_Cookie",
            "auth",
            "x-auth",
            "basic_auth",
        ] {
            assert!(is_sensitive_name(k), "{k}");
        }
        for k in ["port", "host", "name", "queue_size", "author", "authors"] {
            assert!(!is_sensitive_name(k), "{k}");
        }
        for k in ["headers", "Extra_Headers", "default-headers"] {
            assert!(is_header_map_name(k), "{k}");
        }
        for k in ["header", "headerless", "propagateheaders"] {
            assert!(!is_header_map_name(k), "{k}");
        }
    }

    #[test]
    fn every_header_value_is_redacted_and_names_are_kept() {
        let tree = serde_json::json!({
            "tracing": { "headers": { "x-honeycomb-team": "hc", "Authorization": "Bearer t",
                                      "none": null } },
            "app": { "upstream": { "extra_headers": { "x-tenant": "acme", "multi": ["a", "b"] },
                                   "session": { "Set-Cookie": "sid=1" }, "author": "le guin" },
                     "proxy": { "proxy_authorization": "Basic cw==" } },
            "clients": { "b": { "propagate_headers": ["x-tenant-id"] } },
        });
        let out = redact(&tree, &Secrets::default());
        assert_eq!(
            out["tracing"]["headers"],
            serde_json::json!({ "x-honeycomb-team": REDACTED, "Authorization": REDACTED,
                                "none": null })
        );
        assert_eq!(
            out["app"]["upstream"]["extra_headers"],
            serde_json::json!({ "x-tenant": REDACTED, "multi": REDACTED })
        );
        assert_eq!(out["app"]["upstream"]["session"]["Set-Cookie"], REDACTED);
        assert_eq!(out["app"]["upstream"]["author"], "le guin");
        assert_eq!(out["app"]["proxy"]["proxy_authorization"], REDACTED);
        assert_eq!(
            out["clients"]["b"]["propagate_headers"],
            serde_json::json!(["x-tenant-id"]),
            "a list of header names is shown"
        );
    }

    fn diagnostic(key: &str, message: &str) -> ConfigDiagnostic {
        ConfigDiagnostic {
            location: None,
            key: Some(key.into()),
            message: message.into(),
        }
    }

    #[test]
    fn scrub_removes_a_hidden_value_from_messages_about_its_key_only() {
        let secrets = Secrets {
            paths: ["logging.access".to_owned()].into(),
        };
        let tree = serde_json::json!({
            "logging": { "access": "maybe" },
            "tracing": { "headers": { "x-api-key": 987654321 },
                         "endpoint": "ftp://u:hunter2@h" },
            "admin": { "token": true },
            "server": { "port": "maybe" },
        });
        let mut d = [
            diagnostic(
                "logging.access",
                "expected a boolean, found string \"maybe\"",
            ),
            diagnostic("server.port", "expected an integer, found string \"maybe\""),
            diagnostic(
                "tracing.headers.x-api-key",
                "expected a string, found integer `987654321`",
            ),
            diagnostic("tracing.headers", "987654321 is not a header value"),
            diagnostic(
                "tracing.endpoint",
                "expected a URL such as http://127.0.0.1:4317, found \"ftp://u:hunter2@h\"",
            ),
            diagnostic("admin.token", "expected a string, found boolean `true`"),
        ];
        secrets.scrub(&mut d, &tree);
        let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "expected a boolean, found string <redacted>",
                "expected an integer, found string \"maybe\"",
                "expected a string, found integer <redacted>",
                "<redacted> is not a header value",
                "expected a URL such as http://127.0.0.1:4317, found \"ftp://u:<redacted>@h\"",
                "expected a string, found boolean <redacted>",
            ]
        );
    }
}
