//! The secrets the relay hands out: bearer tokens for users and activation codes for agents.
//!
//! A secret reads `<kind>_<id>_<key>`: `kind` is `srt` (token) or `sra` (activation code), `id`
//! 16 hex digits that name it in the store and in logs, and `key` 64 hex digits of randomness
//! that only its holder knows. The relay keeps the id and the SHA-256 of the key; the whole
//! secret is shown once, when made. A presented key is hashed and compared in constant time.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of users' bearer tokens.
pub(crate) const TOKEN: &str = "srt";
/// Prefix of agents' activation codes.
pub(crate) const ACTIVATION: &str = "sra";

const ID_LEN: usize = 8;
const KEY_LEN: usize = 32;

/// A secret as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// Its public name.
    pub(crate) id: String,
    /// SHA-256 of its key.
    pub(crate) hash: [u8; 32],
}

/// The operating system's random generator failed: no secret or challenge can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RandomError;

impl core::fmt::Display for RandomError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the system's random generator failed")
    }
}

impl std::error::Error for RandomError {}

/// Fills `N` bytes from the operating system's generator.
fn fill<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes)
}

/// Fills `N` bytes from the operating system's generator; the error in words, as the
/// handshake's refusals are.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], String> {
    fill().map_err(|e| e.to_string())
}

/// A new secret of `kind`: the text to give its holder once, and what to store.
pub(crate) fn generate(kind: &str) -> Result<(String, Hashed), RandomError> {
    let id = hex::encode(fill::<ID_LEN>()?);
    let key = fill::<KEY_LEN>()?;
    let text = format!("{kind}_{id}_{}", hex::encode(key));
    Ok((text, Hashed { id, hash: sha256(&key) }))
}

/// Reads a presented secret of `kind`; `None` if it is not one.
pub(crate) fn parse(kind: &str, text: &str) -> Option<Hashed> {
    let rest = text.strip_prefix(kind)?.strip_prefix('_')?;
    let (id, key) = rest.split_once('_')?;
    let valid_id = id.len() == 2 * ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit());
    let key = hex::decode(key).ok().filter(|k| k.len() == KEY_LEN)?;
    valid_id.then(|| Hashed { id: id.to_ascii_lowercase(), hash: sha256(&key) })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut hash = [0; 32];
    hash.copy_from_slice(digest(&SHA256, bytes).as_ref());
    hash
}

/// Equal contents, in time that depends only on the lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_parses_to_what_is_stored() {
        let (text, stored) = generate(TOKEN).unwrap();
        assert_eq!(parse(TOKEN, &text), Some(stored.clone()));
        assert_eq!(parse(ACTIVATION, &text), None, "a token is not an activation code");
        let mut altered = text.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        let altered = parse(TOKEN, core::str::from_utf8(&altered).unwrap()).unwrap();
        assert_eq!(altered.id, stored.id);
        assert_ne!(altered.hash, stored.hash);
    }

    #[test]
    fn malformed_secrets_are_not_secrets() {
        for text in
            ["", "srt", "srt_", "srt__", "srt_0123_00", "srt_0123456789abcdef_zz", "srt_0123456789abcdeg_00"]
        {
            assert_eq!(parse(TOKEN, text), None, "{text:?}");
        }
    }
}
