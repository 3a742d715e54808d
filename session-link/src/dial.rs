//! Dialing a relay: `ws://`, or `wss://` through rustls trusting the system's roots or a given
//! certificate authority; a relay's refusal of the handshake comes back with its status and
//! reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use session_codec::websocket::{SUBPROTOCOL, ws_config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// A dialed WebSocket, plain or TLS.
pub type Dialed = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a dial failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum DialError {
    /// The relay answered the handshake, and refused it.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The relay's reason (the response's body); may be empty.
        reason: String,
    },
    /// The relay could not be reached, or the WebSocket or TLS handshake failed.
    Unreachable(tokio_tungstenite::tungstenite::Error),
    /// The relay sent the dial to another (`307` with a `Location`): the relay that holds the
    /// instance, among relays sharing one store (spec C.2).
    Redirected {
        /// Where to: a `ws://` or `wss://` URL, with the path and query dialed.
        location: String,
        /// The relay's words (the response's body); may be empty.
        reason: String,
    },
}

impl DialError {
    /// Whether the relay refused the handshake (as opposed to not being reached).
    pub fn is_refusal(&self) -> bool {
        matches!(self, DialError::Refused { .. })
    }
}

impl core::fmt::Display for DialError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DialError::Refused { status, reason } => {
                let status = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(*status)
                    .map_or_else(|_| status.to_string(), |s| s.to_string());
                if reason.is_empty() {
                    write!(f, "refused by the relay: {status}")
                } else {
                    write!(f, "refused by the relay: {status}: {reason}")
                }
            }
            DialError::Redirected { location, .. } => write!(f, "the relay sent the dial to {location}"),
            DialError::Unreachable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DialError::Refused { .. } | DialError::Redirected { .. } => None,
            DialError::Unreachable(e) => Some(e),
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for DialError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error;
        match error {
            Error::Http(response) => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let reason = body.trim().to_owned();
                let location = response.headers().get("location").and_then(|l| l.to_str().ok());
                match (response.status().as_u16(), location) {
                    (307, Some(location)) => DialError::Redirected { location: location.to_owned(), reason },
                    (status, _) => DialError::Refused { status, reason },
                }
            }
            other => DialError::Unreachable(other),
        }
    }
}

/// A certificate authority file that could not be used.
#[derive(Debug)]
pub struct CaFileError {
    path: PathBuf,
    problem: String,
}

impl core::fmt::Display for CaFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CA file {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for CaFileError {}

/// A `ws://` URL whose host is not this machine's loopback: what is sent there (a bearer
/// token, an activation code) crosses the network in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleartext {
    host: String,
}

impl core::fmt::Display for Cleartext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "refusing plain ws:// to {}: secrets would cross the network in the clear; use wss://, \
             or pass --insecure (only behind a TLS-terminating proxy you trust)",
            self.host
        )
    }
}

impl std::error::Error for Cleartext {}

/// Refuses `url` if it is `ws://` to a host other than loopback (`localhost`, 127.0.0.0/8,
/// `::1`), as the relay refuses to listen off loopback without TLS.
pub fn refuse_cleartext(url: &str) -> Result<(), Cleartext> {
    let Some(rest) = url.strip_prefix("ws://") else { return Ok(()) };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // The host without its port: `[::1]:7070`, `127.0.0.1:7070`, `localhost`.
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback { Ok(()) } else { Err(Cleartext { host: host.to_owned() }) }
}

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
    pub fn ca_file(path: &Path) -> Result<Trust, CaFileError> {
        let fail = |e: &dyn core::fmt::Display| CaFileError { path: path.to_owned(), problem: e.to_string() };
        let pem = std::fs::read(path).map_err(|e| fail(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
        }
        if roots.is_empty() {
            return Err(fail(&"no certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust { config: Some(Arc::new(config)) })
    }

    /// Opens the WebSocket of `request`, with frames up to `max_frame` bytes of body, offering
    /// the subprotocol `session-proto.v1`; a relay that does not select it fails the dial (spec
    /// section 2.4).
    pub async fn dial(&self, request: Request, max_frame: usize) -> Result<(Dialed, Response), DialError> {
        self.dial_with(request, ws_config(max_frame)).await
    }

    /// As [`Trust::dial`], with the WebSocket's own limits: for an endpoint that answers in one
    /// JSON text message rather than frames (spec section 11.4), which may be longer than any
    /// frame.
    pub async fn dial_with(
        &self,
        mut request: Request,
        config: WebSocketConfig,
    ) -> Result<(Dialed, Response), DialError> {
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        let connector = self.config.clone().map(Connector::Rustls);
        Ok(tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::refuse_cleartext;

    #[test]
    fn plain_websocket_is_refused_off_loopback_only() {
        for url in [
            "ws://127.0.0.1:7070",
            "ws://127.8.9.1",
            "ws://localhost:1/x",
            "ws://[::1]:7070",
            "wss://relay.example",
        ] {
            assert_eq!(refuse_cleartext(url), Ok(()), "{url}");
        }
        for url in [
            "ws://relay.example:7070",
            "ws://192.0.2.7",
            "ws://[2001:db8::1]:80/v1",
            "ws://localhost.example",
        ] {
            assert!(refuse_cleartext(url).is_err(), "{url}");
        }
    }
}
