//! The console's files, compiled into the relay: nothing to install, no CDN, and the page works
//! offline. The generated ones (the protocol compiled to wasm32, xterm.js from the npm registry)
//! are committed, and `scripts/console-assets.sh` rebuilds them.

use std::sync::OnceLock;

use ring::digest::{SHA256, digest};

/// One file the console serves.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Its path under `/console/`.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../../console/", $path)),
        }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "console.js" => JS,
    "shell.js" => JS,
    "grid.js" => JS,
    "player.js" => JS,
    "console.css" => CSS,
    "wasm/session_wasm.js" => JS,
    "wasm/session_wasm_bg.wasm" => "application/wasm",
    "vendor/xterm/xterm.js" => JS,
    "vendor/xterm/xterm.css" => CSS,
    "vendor/xterm/addon-fit.js" => JS,
    "vendor/xterm/addon-unicode11.js" => JS,
    "vendor/xterm/addon-search.js" => JS,
    "vendor/xterm/LICENSE-xterm" => TEXT,
    "vendor/xterm/LICENSE-addon-fit" => TEXT,
    "vendor/xterm/LICENSE-addon-unicode11" => TEXT,
    "vendor/xterm/LICENSE-addon-search" => TEXT,
};

/// The page itself.
pub(crate) const INDEX: &str = "index.html";

/// The file at `path` under `/console/`, with its entity tag.
pub(crate) fn get(path: &str) -> Option<(&'static Asset, &'static str)> {
    let index = ASSETS.iter().position(|asset| asset.path == path)?;
    let asset = ASSETS.get(index)?;
    Some((asset, tags().get(index)?.as_str()))
}

/// Each file's entity tag, from its SHA-256: a browser revalidates each load and is told
/// `304 Not Modified` until the relay's build changes.
fn tags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                format!(
                    "\"{}\"",
                    hex::encode(digest(&SHA256, asset.body).as_ref().get(..12).unwrap_or_default())
                )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_there_and_tagged_apart() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{}", asset.path);
            let (found, tag) = get(asset.path).unwrap();
            assert_eq!(found.path, asset.path);
            assert_eq!(tag.len(), 26);
        }
        assert!(get("../Cargo.toml").is_none());
        assert!(get(INDEX).is_some());
    }
}
