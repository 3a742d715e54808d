//! Dialing a relay: `ws://`, or `wss://` through rustls trusting the system's roots or a given
//! certificate authority; and a relay's refusal of the handshake turned into its reason.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "files and sockets")]

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::websocket::ws_config;

/// A dialed WebSocket, plain or TLS.
pub type Dialed = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which relay certificates a `wss://` dial accepts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// `None`: the operating system's roots.
    config: Option<Arc<rustls::ClientConfig>>,
}

impl Trust {
    /// The operating system's root certificates.
    pub fn system() -> Trust {
        Trust::default()
    }

    /// Only the certificate authorities in the PEM file at `path`, as for a relay whose
    /// certificate a private authority issued.
    pub fn ca_file(path: &Path) -> Result<Trust, String> {
        let read = |e: &dyn core::fmt::Display| format!("CA file {}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| read(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| read(&e))?).map_err(|e| read(&e))?;
        }
        if roots.is_empty() {
            return Err(read(&"no certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| read(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust { config: Some(Arc::new(config)) })
    }

    /// Opens the WebSocket of `request`, with frames up to `max_frame` bytes of body.
    pub async fn dial(&self, request: Request, max_frame: usize) -> Result<(Dialed, Response), String> {
        let connector = self.config.clone().map(Connector::Rustls);
        tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config(max_frame)), true, connector)
            .await
            .map_err(|e| describe(&e))
    }
}

/// A dial's failure in words; a refused handshake gives the relay's status and reason.
pub fn describe(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let status = response.status();
            if body.is_empty() {
                format!("refused by the relay: {status}")
            } else {
                format!("refused by the relay: {status}: {}", body.trim())
            }
        }
        other => other.to_string(),
    }
}
