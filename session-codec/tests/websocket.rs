//! The WebSocket mapping over a real WebSocket on loopback: frames cross both ways without a
//! copy, a message may batch whole frames, and every malformed message is refused.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use session_codec::proto::{Message, Stream};
use session_codec::websocket::WsFrames;
use session_codec::{CodecError, Frame};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws<S> = WebSocketStream<S>;

async fn pair() -> (Ws<TcpStream>, Ws<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio_tungstenite::accept_async(tcp).await.unwrap()
    });
    let tcp = TcpStream::connect(listener_addr(&url)).await.unwrap();
    let (client, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    (client, accept.await.unwrap())
}

fn listener_addr(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches("/agent")
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
    let (mut client, server) = pair().await;
    let mut server = WsFrames::new(server);
    client.send(message).await.unwrap();
    server.next().await.unwrap().expect_err("must be refused")
}

#[tokio::test]
async fn malformed_messages_are_protocol_errors() {
    assert!(matches!(refused(WsMessage::Text("hello".into())).await, CodecError::BadMessage("text message")));
    assert!(matches!(
        refused(WsMessage::Binary(Bytes::new())).await,
        CodecError::BadMessage("empty message")
    ));
    let cut = frame(Message::Data { channel: 1, stream: Stream::Stdout, payload: b"abcdef" }).into_bytes();
    assert!(matches!(
        refused(WsMessage::Binary(cut.slice(..9))).await,
        CodecError::Truncated { buffered: 9 }
    ));
    let oversize = Bytes::from(vec![0u8; 131_072 + 7]);
    assert!(matches!(refused(WsMessage::Binary(oversize)).await, CodecError::BadMessage(_)));
    let claim = Bytes::from_static(&[0x02, 0x00, 0x01, 0x13, 0x00, 0x01]);
    assert!(matches!(
        refused(WsMessage::Binary(claim)).await,
        CodecError::FrameTooLarge { len: 131_073, .. }
    ));
    let zero_credit = Bytes::from_static(&[0x00, 0x00, 0x01, 0x14, 0x00, 0x01, 0x00]);
    assert!(matches!(refused(WsMessage::Binary(zero_credit)).await, CodecError::Protocol(_)));
}

#[tokio::test]
async fn the_sink_refuses_frames_beyond_the_peer_maximum() {
    let (client, _server) = pair().await;
    let mut client = WsFrames::new(client);
    let big = frame(Message::Data { channel: 1, stream: Stream::Stdout, payload: &[0; 20_000] });
    assert!(matches!(
        client.send(big.clone()).await,
        Err(CodecError::FrameTooLarge { len: 20_001, max: 16_384 })
    ));
    client.set_peer_max_frame(131_072);
    client.send(big).await.unwrap();
}
