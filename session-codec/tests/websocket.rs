//! The WebSocket mapping over a real WebSocket on loopback: frames cross both ways without a
//! copy, a message may batch whole frames, and every malformed message is refused.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use session_codec::proto::{Message, Stream};
use session_codec::websocket::{WsFrames, ws_config};
use session_codec::{BadMessage, CodecError, Frame};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

/// A client and a server WebSocket on loopback; the server is built with `server_config`.
async fn pair_with(server_config: WebSocketConfig) -> (Ws, Ws) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio_tungstenite::accept_async_with_config(tcp, Some(server_config)).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}/agent");
    let (client, _) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config(131_072))).await.unwrap();
    (client, accept.await.unwrap())
}

async fn pair() -> (Ws, Ws) {
    pair_with(ws_config(131_072)).await
}

fn frame(message: Message<'_>) -> Frame {
    Frame::new(&message).unwrap()
}

#[tokio::test]
async fn frames_cross_both_ways_and_batched_frames_come_out_one_by_one() {
    let (client, server) = pair().await;
    let mut client = WsFrames::new(client);
    let mut server = WsFrames::new(server);
    let keystroke = frame(Message::Data { channel: 1, stream: Stream::Stdin, payload: b"a" });
    client.send(keystroke.clone()).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), keystroke);

    let output = frame(Message::Data { channel: 1, stream: Stream::Stdout, payload: &[7; 10_000] });
    server.send(output.clone()).await.unwrap();
    let received = client.next().await.unwrap().unwrap();
    assert_eq!(received.payload(), output.payload());
    assert_eq!(received.stream(), Some(Stream::Stdout));

    // Several whole frames in one binary message.
    let batch = [frame(Message::Credit { channel: 1, increment: 1 }), frame(Message::Eof { channel: 1 })];
    let bytes: Vec<u8> = batch.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
    client.get_mut().send(WsMessage::Binary(bytes.into())).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), batch[0]);
    assert_eq!(server.next().await.unwrap().unwrap(), batch[1]);

    client.get_mut().close(None).await.unwrap();
    assert!(server.next().await.is_none(), "a close ends the stream of frames");
}

async fn refused(message: WsMessage) -> CodecError {
    // A server without ws_config, so that the adapter's own checks are what refuse.
    let (mut client, server) = pair_with(WebSocketConfig::default()).await;
    let mut server = WsFrames::new(server);
    client.send(message).await.unwrap();
    server.next().await.unwrap().expect_err("must be refused")
}

#[tokio::test]
async fn malformed_messages_are_protocol_errors() {
    assert!(matches!(
        refused(WsMessage::Text("hello".into())).await,
        CodecError::BadMessage(BadMessage::Text)
    ));
    assert!(matches!(
        refused(WsMessage::Binary(Bytes::new())).await,
        CodecError::BadMessage(BadMessage::Empty)
    ));
    let cut = frame(Message::Data { channel: 1, stream: Stream::Stdout, payload: b"abcdef" }).into_bytes();
    assert!(matches!(
        refused(WsMessage::Binary(cut.slice(..9))).await,
        CodecError::Truncated { buffered: 9 }
    ));
    let oversize = Bytes::from(vec![0u8; 131_072 + 7]);
    assert!(matches!(
        refused(WsMessage::Binary(oversize)).await,
        CodecError::BadMessage(BadMessage::TooLong)
    ));
    let claim = Bytes::from_static(&[0x02, 0x00, 0x01, 0x13, 0x00, 0x01]);
    assert!(matches!(
        refused(WsMessage::Binary(claim)).await,
        CodecError::FrameTooLarge { len: 131_073, .. }
    ));
    let zero_credit = Bytes::from_static(&[0x00, 0x00, 0x01, 0x14, 0x00, 0x01, 0x00]);
    assert!(matches!(refused(WsMessage::Binary(zero_credit)).await, CodecError::Protocol(_)));
}

#[tokio::test]
async fn with_ws_config_an_oversized_message_is_refused_by_its_websocket_header() {
    let (mut client, server) = pair().await;
    let mut server = WsFrames::new(server);
    let oversize = Bytes::from(vec![0u8; 131_072 + 7]);
    client.send(WsMessage::Binary(oversize)).await.unwrap();
    match server.next().await {
        Some(Err(CodecError::WebSocket(e))) => assert!(e.to_string().contains("Space limit exceeded"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_sink_refuses_frames_beyond_the_peer_maximum() {
    let (client, _server) = pair().await;
    let mut client = WsFrames::new(client);
    let big = frame(Message::Data { channel: 1, stream: Stream::Stdout, payload: &[0; 20_000] });
    assert!(matches!(
        client.send(big.clone()).await,
        Err(CodecError::SendTooLarge { len: 20_001, max: 16_384 })
    ));
    assert_eq!(
        CodecError::SendTooLarge { len: 1, max: 0 }.go_away_code(),
        None,
        "our own mistake: no GoAway"
    );
    client.set_peer_max_frame(131_072);
    client.send(big).await.unwrap();
}

#[tokio::test]
async fn a_relay_relabels_a_received_frame() {
    let (client, server) = pair().await;
    let mut client = WsFrames::new(client);
    let mut server = WsFrames::new(server);
    client.send(frame(Message::Data { channel: 1, stream: Stream::Stdin, payload: b"ls\r" })).await.unwrap();
    let relabeled = server.next().await.unwrap().unwrap().with_channel(7).unwrap();
    assert_eq!(relabeled.channel(), 7);
    assert_eq!(
        relabeled.message(),
        Ok(Message::Data { channel: 7, stream: Stream::Stdin, payload: b"ls\r" })
    );
    assert!(matches!(
        relabeled.with_channel(0),
        Err(CodecError::Send(session_codec::proto::Error::BadChannel))
    ));
}

#[test]
fn a_frame_that_owns_its_bytes_is_relabeled_in_place() {
    let owned = frame(Message::Eof { channel: 3 });
    let start = owned.as_bytes().as_ptr();
    let relabeled = owned.with_channel(5).unwrap();
    assert_eq!(relabeled.as_bytes().as_ptr(), start);
    assert_eq!(relabeled.message(), Ok(Message::Eof { channel: 5 }));
}
