//! How identity travels in the WebSocket handshake (spec section 11): the header names, and the
//! message an agent signs to prove it holds its key.

/// An agent's Ed25519 public key, 64 hex digits, on every agent handshake.
pub const AGENT_KEY_HEADER: &str = "x-session-agent-key";
/// An activation code, on an agent's handshake until its key is registered.
pub const ACTIVATION_HEADER: &str = "x-session-activation";
/// An agent's labels for its instance, `key=value` pairs separated by `,`, on every agent
/// handshake that has any (spec 11.1).
pub const LABELS_HEADER: &str = "x-session-labels";
/// The relay's fresh challenge, 64 hex digits, in its `101 Switching Protocols` response.
pub const CHALLENGE_HEADER: &str = "x-session-challenge";
/// The relay's text message after a good proof; a refusal is a Close with the reason instead.
pub const ADMITTED: &str = "ok";
/// Bytes of a challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Separates the fields of the signed message; it cannot occur in an instance name.
const SEPARATOR: u8 = b'\n';
/// Names what the signature is for, so that it cannot be taken for any other signed message.
const CONTEXT: &[u8] = b"session-agent-proof-v1";

/// What an agent signs with its key: the context, its instance name and the relay's challenge,
/// each followed by a newline (the challenge as its raw bytes).
pub fn agent_proof_message(instance: &str, challenge: &[u8; CHALLENGE_LEN]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + instance.len() + CHALLENGE_LEN + 3);
    for field in [CONTEXT, instance.as_bytes(), challenge] {
        message.extend_from_slice(field);
        message.push(SEPARATOR);
    }
    message
}
