//! Where the relay is, as whom it is reached, and its one-answer requests.

use std::time::Duration;

use futures_util::StreamExt;
use session_codec::websocket::ws_config;
use session_link::dial::{DialError, Dialed, Trust};
use session_proto::DEFAULT_MAX_FRAME;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::Error;

/// How long a dial may take, handshake included.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest JSON answer read (spec 11.4): a listing of some 400,000 instances.
const MAX_ANSWER_LEN: usize = 64 << 20;

/// How many redirects a dial follows: relays on one store redirect once, to the relay that holds
/// the instance; a second covers an agent that moved meanwhile.
const MAX_REDIRECTS: usize = 2;

/// The base URL of the relay a redirect from `from` to `location` names, for a dial of `path`:
/// `None` unless `location` is `path` at a `ws://` or `wss://` URL, and not `ws://` after
/// `wss://`, which would send the token in the clear.
fn redirected<'a>(from: &str, location: &'a str, path: &str) -> Option<&'a str> {
    let base = location.strip_suffix(path)?;
    let plain_after_tls = base.starts_with("ws://") && from.starts_with("wss://");
    ((base.starts_with("wss://") || base.starts_with("ws://")) && !plain_after_tls).then_some(base)
}

/// A dial that did not give a WebSocket.
enum Dialing {
    /// To be dialed again there.
    Redirected(String),
    Failed(Error),
}

impl From<Error> for Dialing {
    fn from(e: Error) -> Self {
        Dialing::Failed(e)
    }
}

/// How long a lost connection is dialed again, by default: the relay's default detach timeout,
/// after which it has given the session up too.
pub const DEFAULT_REATTACH_FOR: Duration = Duration::from_secs(60);

/// How to reach the relay, and as whom.
#[derive(Clone)]
pub struct Relay {
    /// Its base URL, `ws://host:port` or `wss://host:port`.
    pub url: String,
    /// Which certificates `wss://` accepts.
    pub trust: Trust,
    /// The user's bearer token (`session-relay admin token create`).
    pub token: String,
    /// How long a connection that was lost is dialed again to re-attach its session before
    /// the session is given up (spec 12.9); zero gives it up at once.
    pub reattach_for: Duration,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The token is a secret: never in a log.
        f.debug_struct("Relay").field("url", &self.url).field("trust", &self.trust).finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay at `url`, trusting the system's roots, for the holder of `token`.
    pub fn new(url: &str, token: &str) -> Relay {
        Relay {
            url: url.trim_end_matches('/').to_owned(),
            trust: Trust::system(),
            token: token.to_owned(),
            reattach_for: DEFAULT_REATTACH_FOR,
        }
    }

    /// Dials `path` with the token, within [`DIAL_TIMEOUT`], for frames.
    pub(crate) async fn dial(&self, path: &str) -> Result<Dialed, Error> {
        Ok(self.dial_answered(path).await?.0)
    }

    /// As [`dial`](Relay::dial), with the relay's `101` answer, for what its headers say.
    pub(crate) async fn dial_answered(&self, path: &str) -> Result<(Dialed, Response), Error> {
        self.dial_with(path, ws_config(DEFAULT_MAX_FRAME)).await
    }

    /// Dials `path`, following a relay's redirect to the relay that holds the instance (spec
    /// C.2), at most [`MAX_REDIRECTS`] times: the relay that answered, and its WebSocket. A
    /// redirect from `wss://` to `ws://` is refused: the token would then cross in the clear.
    pub(crate) async fn dial_held(&self, path: &str) -> Result<(Relay, Dialed), Error> {
        let mut relay = self.clone();
        for _ in 0..=MAX_REDIRECTS {
            match relay.try_dial(path, ws_config(DEFAULT_MAX_FRAME)).await {
                Ok((ws, _)) => return Ok((relay, ws)),
                Err(Dialing::Redirected(location)) => {
                    let Some(base) = redirected(&relay.url, &location, path) else {
                        return Err(Error::Invalid(format!(
                            "{}{path}: redirected to {location}, which is not the same path on a relay as safe",
                            relay.url
                        )));
                    };
                    relay.url = base.to_owned();
                }
                Err(Dialing::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Invalid(format!("{}{path}: redirected more than {MAX_REDIRECTS} times", self.url)))
    }

    /// Dials `path` with the token and the WebSocket limits of `config`; a redirect is a
    /// refusal here.
    async fn dial_with(&self, path: &str, config: WebSocketConfig) -> Result<(Dialed, Response), Error> {
        self.try_dial(path, config).await.map_err(|dialing| match dialing {
            Dialing::Failed(e) => e,
            Dialing::Redirected(location) => Error::Refused {
                url: self.url.clone(),
                status: 307,
                reason: format!("the relay sent it to {location}"),
            },
        })
    }

    async fn try_dial(&self, path: &str, config: WebSocketConfig) -> Result<(Dialed, Response), Dialing> {
        let invalid = |e: &dyn core::fmt::Display| Error::Invalid(format!("{}{path}: {e}", self.url));
        let mut request: Request =
            format!("{}{path}", self.url).into_client_request().map_err(|e| invalid(&e))?;
        if !self.token.is_empty() {
            let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token))
                .map_err(|_| Error::Invalid("the token is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", bearer);
        }
        match tokio::time::timeout(DIAL_TIMEOUT, self.trust.dial_with(request, config)).await {
            Ok(Ok(dialed)) => Ok(dialed),
            Ok(Err(DialError::Redirected { location, .. })) => Err(Dialing::Redirected(location)),
            Ok(Err(e)) => Err(Dialing::Failed(Error::dial(&self.url, e))),
            Err(_) => Err(Dialing::Failed(Error::Unreachable { url: self.url.clone(), cause: None })),
        }
    }

    /// Asks `path` and returns the relay's one JSON answer.
    async fn ask(&self, path: &str) -> Result<serde_json::Value, Error> {
        // An answer is not a frame: a fleet's listing is longer than any frame may be.
        let limit = Some(MAX_ANSWER_LEN);
        let config = WebSocketConfig::default().max_message_size(limit).max_frame_size(limit);
        let (mut ws, _) = self.dial_with(path, config).await?;
        let lost = |e: &dyn core::fmt::Display| Error::BadAnswer(format!("{}{path}: {e}", self.url));
        while let Some(message) = ws.next().await {
            if let Ok(text) = message.map_err(|e| lost(&e))?.into_text() {
                if !text.is_empty() {
                    return serde_json::from_str(&text).map_err(|e| lost(&e));
                }
            }
        }
        Err(lost(&"the relay sent no answer"))
    }

    /// The instances this user may see, with their status and labels.
    pub async fn list(&self) -> Result<serde_json::Value, Error> {
        self.ask("/v1/instances").await
    }

    /// This user's sessions in progress.
    pub async fn sessions(&self) -> Result<serde_json::Value, Error> {
        self.ask("/v1/sessions").await
    }

    /// Ends this user's session `id`.
    pub async fn terminate(&self, id: &str) -> Result<serde_json::Value, Error> {
        self.ask(&format!("/v1/sessions/{id}/terminate")).await
    }

    /// Turns session management on or off for `account`.
    pub async fn switch(&self, account: &str, on: bool) -> Result<serde_json::Value, Error> {
        self.ask(&format!("/v1/settings/{account}?sessions={}", if on { "on" } else { "off" })).await
    }
}

#[cfg(test)]
mod tests {
    use super::redirected;

    #[test]
    fn a_redirect_is_followed_to_the_same_path_and_never_from_tls_to_plain() {
        let path = "/v1/client/web-1";
        assert_eq!(
            redirected("ws://127.0.0.1:1", "ws://127.0.0.1:2/v1/client/web-1", path),
            Some("ws://127.0.0.1:2")
        );
        assert_eq!(
            redirected("ws://127.0.0.1:1", "wss://r2.example/v1/client/web-1", path),
            Some("wss://r2.example")
        );
        assert_eq!(
            redirected("wss://r1.example", "wss://r2.example/v1/client/web-1", path),
            Some("wss://r2.example")
        );
        assert_eq!(
            redirected("wss://r1.example", "ws://r2.example/v1/client/web-1", path),
            None,
            "the token in the clear"
        );
        assert_eq!(
            redirected("ws://127.0.0.1:1", "ws://127.0.0.1:2/v1/client/web-2", path),
            None,
            "another instance"
        );
        assert_eq!(
            redirected("ws://127.0.0.1:1", "https://r2.example/v1/client/web-1", path),
            None,
            "not a relay"
        );
        assert_eq!(redirected("ws://127.0.0.1:1", "/v1/client/web-1", path), None, "no relay named");
    }
}
