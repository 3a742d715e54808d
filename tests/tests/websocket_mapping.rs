//! The relay against spec section 2.4, the WebSocket mapping: a handshake that does not offer
//! the subprotocol fails, a message longer than one maximal frame is answered with GoAway
//! PROTOCOL_ERROR, and after a GoAway the WebSocket closes with status 1000 for NO_ERROR and
//! 1002 for any other code.

use futures_util::{SinkExt, StreamExt};
use session_codec::Frame;
use session_proto::connection::{Config, Role};
use session_proto::{DEFAULT_MAX_FRAME, ErrorCode, HEADER_LEN, Message};
use session_test_kit::System;
use session_test_kit::raw::{Raw, Ws};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Reads until the WebSocket closes: the GoAway codes that came, and the Close's status.
async fn until_closed(ws: &mut Ws) -> (Vec<ErrorCode>, Option<CloseCode>) {
    let mut codes = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(WsMessage::Binary(bytes)) => {
                    let mut rest = bytes;
                    while !rest.is_empty() {
                        let len = session_proto::frame::peek_len(&rest, usize::MAX).unwrap().unwrap();
                        let frame = Frame::from_bytes(rest.split_to(len), usize::MAX).unwrap();
                        if let Ok(Message::GoAway { code, .. }) = frame.message() {
                            codes.push(code);
                        }
                    }
                }
                Ok(WsMessage::Close(close)) => return close.map(|c| c.code),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let status =
        tokio::time::timeout(core::time::Duration::from_secs(30), read).await.expect("the relay closes");
    (codes, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_does_not_offer_the_subprotocol_fails() {
    let system = System::start(None).await;
    for path in ["/v1/client/i-001", "/v1/instances", "/v1/agent/i-001"] {
        let mut request = format!("{}{path}", system.url).into_client_request().unwrap();
        let bearer = HeaderValue::from_str(&format!("Bearer {}", system.token())).unwrap();
        request.headers_mut().insert("authorization", bearer);
        let error = tokio_tungstenite::connect_async(request).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(response) = error else { panic!("{path}: {error}") };
        assert_eq!(response.status(), 400, "{path}");
        let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
        assert!(body.contains("session-proto.v1"), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_longer_than_a_maximal_frame_gets_goaway_protocol_error_and_close_1002() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let mut raw = Raw::connect(&system.url, system.token(), "i-001", Config::new(Role::Initiator)).await;
    let oversize = vec![0u8; DEFAULT_MAX_FRAME + HEADER_LEN + 1];
    raw.ws.send(WsMessage::binary(oversize)).await.unwrap();
    let (codes, status) = until_closed(&mut raw.ws).await;
    assert_eq!(codes, [ErrorCode::PROTOCOL_ERROR]);
    assert_eq!(status, Some(CloseCode::Protocol));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_goaway_the_websocket_closes_with_1000_or_1002() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;

    // The client breaks a rule (Data on a channel it never opened): the relay says why.
    let mut raw = Raw::connect(&system.url, system.token(), "i-001", Config::new(Role::Initiator)).await;
    let data = Frame::new(&Message::Data { channel: 7, stream: session_proto::Stream::Stdin, payload: b"x" });
    raw.ws.send(WsMessage::binary(data.unwrap().into_bytes())).await.unwrap();
    let (codes, status) = until_closed(&mut raw.ws).await;
    assert_eq!(codes, [ErrorCode::PROTOCOL_ERROR]);
    assert_eq!(status, Some(CloseCode::Protocol));

    // The client ends its connection gracefully: the relay closes with 1000.
    let mut raw = Raw::connect(&system.url, system.token(), "i-001", Config::new(Role::Initiator)).await;
    raw.conn.go_away(ErrorCode::NO_ERROR, "done");
    raw.flush().await;
    let (codes, status) = until_closed(&mut raw.ws).await;
    assert!(codes.is_empty(), "nothing after a GoAway: {codes:?}");
    assert_eq!(status, Some(CloseCode::Normal));
}

/// A client that completes its WebSocket handshake and then says nothing is told, with GoAway
/// PROTOCOL_ERROR, once the relay's handshake bound (10 s) passes: never a silent hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_no_hello_is_told_so() {
    let mut system = System::start(None).await;
    system.agent("i-001").await;
    let mut request = format!("{}/v1/client/i-001", system.url).into_client_request().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", system.token())).unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, _) = session_link::dial::Trust::system().dial(request, DEFAULT_MAX_FRAME).await.unwrap();
    let (codes, status) = until_closed(&mut ws).await;
    assert_eq!(codes, [ErrorCode::PROTOCOL_ERROR]);
    assert_eq!(status, Some(CloseCode::Protocol));
}
