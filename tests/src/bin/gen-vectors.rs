//! Writes `spec/vectors/valid.json` and `spec/vectors/invalid.json` from the tables in
//! `session_tests::vectors`. Run it after changing a table, review the diff, commit both.

use serde_json::{Value, json};
use session_tests::{json::to_json, vectors, vectors_dir};

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let mut valid = Vec::new();
    for (name, message) in vectors::valid() {
        let mut bytes = vec![0; message.encoded_len()];
        message.encode(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
        valid.push(json!({ "name": name, "hex": hex::encode(&bytes), "decoded": to_json(&message) }));
    }
    let invalid: Vec<Value> = vectors::invalid()
        .into_iter()
        .map(|(name, bytes, error)| json!({ "name": name, "hex": hex::encode(bytes), "error": error.name() }))
        .collect();
    let dir = vectors_dir();
    for (file, cases) in [("valid.json", valid), ("invalid.json", invalid)] {
        let mut text = serde_json::to_string_pretty(&cases)?;
        text.push('\n');
        std::fs::write(dir.join(file), text)?;
        println!("{file}: {} vectors", cases.len());
    }
    Ok(())
}
