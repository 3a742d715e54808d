//! The agent's identity: an Ed25519 key pair made on first start and kept in a file only its
//! owner can read. The relay knows only the public half, registered once with an activation
//! code; every connection then proves the private half by signing the relay's challenge.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use session_link::identity::{CHALLENGE_LEN, agent_proof_message};

/// The agent's key pair.
#[derive(Clone)]
pub struct AgentKey {
    pair: Arc<Ed25519KeyPair>,
}

impl core::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AgentKey").field("public", &self.public_hex()).finish_non_exhaustive()
    }
}

impl AgentKey {
    /// A new key pair, kept only in memory.
    pub fn generate() -> Result<AgentKey, String> {
        let (_, key) = AgentKey::generate_document()?;
        Ok(key)
    }

    fn generate_document() -> Result<(Vec<u8>, AgentKey), String> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| "no randomness for a key")?;
        let key = AgentKey::from_document(document.as_ref())?;
        Ok((document.as_ref().to_vec(), key))
    }

    fn from_document(document: &[u8]) -> Result<AgentKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8(document).map_err(|e| format!("not an Ed25519 key: {e}"))?;
        Ok(AgentKey { pair: Arc::new(pair) })
    }

    /// The key pair in the PKCS#8 file at `path`, made and written there (mode 0600) if there
    /// is none.
    pub fn load_or_create(path: &Path) -> Result<AgentKey, String> {
        let at = |e: &dyn core::fmt::Display| format!("key file {}: {e}", path.display());
        match std::fs::read(path) {
            Ok(document) => AgentKey::from_document(&document).map_err(|e| at(&e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (document, key) = AgentKey::generate_document()?;
                let mut file = std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| at(&e))?;
                file.write_all(&document).and_then(|()| file.sync_all()).map_err(|e| at(&e))?;
                Ok(key)
            }
            Err(e) => Err(at(&e)),
        }
    }

    /// The public half, as the handshake carries it: 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The proof for the relay's `challenge` to `instance`: the signature, in hex.
    pub fn prove(&self, instance: &str, challenge: &[u8; CHALLENGE_LEN]) -> String {
        hex::encode(self.pair.sign(&agent_proof_message(instance, challenge)).as_ref())
    }
}
