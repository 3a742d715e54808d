//! An agent's side of the relay's handshake done by hand (spec 11.2), so that tests can send
//! what a real agent never would: another's key, a replayed proof, a used code.

use futures_util::{SinkExt, StreamExt};
use session_agent::AgentKey;
use session_link::dial::{DialError, Dialed, Trust};
use session_link::identity::{ACTIVATION_HEADER, ADMITTED, AGENT_KEY_HEADER, CHALLENGE_HEADER};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The agent's side of the handshake by hand: connects as `instance` with `key` (and `code`),
/// and returns the socket and the relay's challenge, or the relay's refusal.
pub async fn agent_handshake(
    url: &str,
    instance: &str,
    key: &AgentKey,
    code: Option<&str>,
) -> Result<(Dialed, [u8; 32]), DialError> {
    let mut request = format!("{url}/v1/agent/{instance}").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(AGENT_KEY_HEADER, HeaderValue::from_str(&key.public_hex()).unwrap());
    if let Some(code) = code {
        headers.insert(ACTIVATION_HEADER, HeaderValue::from_str(code).unwrap());
    }
    let (ws, response) = Trust::system().dial(request, 1 << 16).await?;
    let challenge = hex::decode(response.headers()[CHALLENGE_HEADER].as_bytes()).unwrap();
    Ok((ws, challenge.try_into().unwrap()))
}

/// Sends `proof` and returns the relay's answer: `Ok` on admission, else the Close's reason.
pub async fn answer(ws: &mut Dialed, proof: String) -> Result<(), String> {
    ws.send(WsMessage::text(proof)).await.unwrap();
    match ws.next().await {
        Some(Ok(WsMessage::Text(text))) if text.as_str() == ADMITTED => Ok(()),
        Some(Ok(WsMessage::Close(Some(close)))) => Err(close.reason.to_string()),
        other => panic!("unexpected answer {other:?}"),
    }
}
