//! The worked examples of spec section 11 hold: the agent's signed message and signature for
//! the RFC 8032 test key, and a token's stored hash. A change to the proof's layout or the
//! token's hashing that the spec does not follow fails here.

#![allow(clippy::std_instead_of_core, reason = "reads the spec file")]

use ring::signature::{Ed25519KeyPair, KeyPair};
use session_link::identity::agent_proof_message;
use sha2::Digest;

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const MESSAGE: &str = "73657373696f6e2d6167656e742d70726f6f662d76310a692d303031370a\
                       000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0a";
const SIGNATURE: [&str; 2] = [
    "bf169978372c4eb558bc3493d25a69aa47e5574999e82de80734fd66f526d948",
    "7096fc0beaa9e1911898a9b1dff8cbc8e9e57fe73d4e5e1568171566977a9a07",
];
const TOKEN_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const TOKEN_HASH: &str = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd";

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/PROTOCOL.md")).expect("the spec")
}

#[test]
fn the_agent_proof_example_is_what_the_code_signs() {
    let spec = spec();
    for text in [SEED, PUBLIC, SIGNATURE[0], SIGNATURE[1], "692d30303137 0a"] {
        assert!(spec.contains(text), "the spec's example no longer shows {text}");
    }
    let challenge: [u8; 32] = core::array::from_fn(|i| i as u8);
    let message = agent_proof_message("i-0017", &challenge);
    assert_eq!(hex::encode(&message), MESSAGE);
    assert_eq!(message.len(), 57 + "i-0017".len());

    let pair = Ed25519KeyPair::from_seed_unchecked(&hex::decode(SEED).unwrap()).unwrap();
    assert_eq!(hex::encode(pair.public_key().as_ref()), PUBLIC);
    assert_eq!(hex::encode(pair.sign(&message).as_ref()), SIGNATURE.concat());
}

#[test]
fn the_token_example_is_stored_as_its_key_hash() {
    let spec = spec();
    let token = format!("srt_0123456789abcdef_{TOKEN_KEY}");
    assert!(spec.contains(&token) && spec.contains(TOKEN_HASH));
    let hash = sha2::Sha256::digest(hex::decode(TOKEN_KEY).unwrap());
    assert_eq!(hex::encode(hash), TOKEN_HASH, "the hash of the key's bytes, not of its hex");
    // The relay reads the example as a token, and knows no such one.
    let store = session_relay::Store::in_memory().unwrap();
    assert_eq!(store.authenticate(&token).unwrap_err().to_string(), "unknown token");
}
