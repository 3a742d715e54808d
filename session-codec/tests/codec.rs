//! SessionCodec on real byte streams: any split decodes as one piece, limits hold before memory
//! is reserved, and a stream that ends inside a frame says so.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use session_codec::proto::{
    Capabilities, Env, ExitStatus, Hello, Message, OpenKind, Pty, Signal, Stream, WindowSize,
};
use session_codec::{CodecError, Frame, SessionCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, FramedRead};

fn session_messages(payload: &[u8]) -> Vec<Message<'_>> {
    let size = WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 };
    vec![
        Message::Hello(Hello {
            capabilities: Capabilities::RESUME,
            max_frame: 131_072,
            initial_window: 262_144,
            keepalive_ms: 15_000,
            resume: None,
        }),
        Message::Open {
            channel: 1,
            kind: OpenKind::Shell { pty: Pty { term: "xterm", size }, env: Env::EMPTY },
        },
        Message::Accept { channel: 1 },
        Message::Data { channel: 1, stream: Stream::Stdout, payload },
        Message::Resize { channel: 1, size: WindowSize { cols: 120, ..size } },
        Message::Data { channel: 1, stream: Stream::Stdin, payload: b"\x03" },
        Message::Signal { channel: 1, signal: Signal::INT },
        Message::Credit { channel: 1, increment: 4096 },
        Message::Data { channel: 1, stream: Stream::Stderr, payload: &payload[..7] },
        Message::Ping { nonce: 9 },
        Message::Exit { channel: 1, status: ExitStatus::Code(0) },
        Message::Eof { channel: 1 },
        Message::Close { channel: 1 },
    ]
}

fn wire(messages: &[Message<'_>]) -> BytesMut {
    let mut codec = SessionCodec::new();
    codec.set_peer_max_frame(131_072);
    let mut out = BytesMut::new();
    for m in messages {
        codec.encode(*m, &mut out).expect("valid message");
    }
    out
}

fn decode_all(codec: &mut SessionCodec, buf: &mut BytesMut) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buf).expect("valid stream") {
        frames.push(frame);
    }
    frames
}

#[test]
fn interleaved_control_and_data_split_at_every_byte_decode_as_one_piece() {
    let payload: Vec<u8> = (0..=255).collect();
    let messages = session_messages(&payload);
    let stream = wire(&messages);
    let whole = decode_all(&mut SessionCodec::new(), &mut stream.clone());
    let decoded: Vec<Message<'_>> = whole.iter().map(|f| f.message().expect("validated")).collect();
    assert_eq!(decoded, messages);
    assert_eq!(whole[3].payload(), Some(Bytes::from(payload.clone())));
    assert_eq!(whole[8].stream(), Some(Stream::Stderr));
    for cut in 0..=stream.len() {
        let mut codec = SessionCodec::new();
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut frames = decode_all(&mut codec, &mut buf);
        buf.extend_from_slice(&stream[cut..]);
        frames.extend(decode_all(&mut codec, &mut buf));
        assert_eq!(frames, whole, "cut at {cut}");
        assert!(buf.is_empty());
    }
}

#[test]
fn an_oversize_claim_fails_before_anything_is_reserved() {
    let mut codec = SessionCodec::new().with_max_frame(20_000);
    for claim in [20_001usize, 0xff_ffff] {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&[(claim >> 16) as u8, (claim >> 8) as u8, claim as u8, 0x13, 0, 1]);
        match codec.decode(&mut buf) {
            Err(CodecError::FrameTooLarge { len, max: 20_000 }) => assert_eq!(len, claim),
            other => panic!("{other:?}"),
        }
        assert!(buf.capacity() < 1024, "reserved {} bytes for a refused frame", buf.capacity());
    }
    // A frame at the limit is reserved for, and no more.
    let mut buf = BytesMut::from(&[0x00, 0x4e, 0x20, 0x13, 0x00, 0x01][..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= 20_006 && buf.capacity() < 2 * 20_006);
}

#[test]
fn encoder_refuses_frames_beyond_the_peer_maximum() {
    let mut codec = SessionCodec::new();
    let payload = vec![0u8; 16_384];
    let mut out = BytesMut::new();
    let data = Message::Data { channel: 1, stream: Stream::Stdout, payload: &payload };
    assert!(matches!(
        codec.encode(data, &mut out),
        Err(CodecError::SendTooLarge { len: 16_385, max: 16_384 })
    ));
    assert!(out.is_empty());
    codec.set_peer_max_frame(65_536);
    codec.encode(data, &mut out).unwrap();
    assert_eq!(out.len(), 7 + 16_384);
    let bad = Message::Credit { channel: 1, increment: 0 };
    assert!(matches!(codec.encode(bad, &mut out), Err(CodecError::Send(_))));
    assert_eq!(out.len(), 7 + 16_384, "a refused message leaves nothing behind");
}

#[test]
fn a_bad_body_is_a_protocol_error() {
    let mut buf = BytesMut::from(&[0x00, 0x00, 0x01, 0x14, 0x00, 0x01, 0x00][..]);
    assert!(matches!(
        SessionCodec::new().decode(&mut buf),
        Err(CodecError::Protocol(session_codec::proto::Error::InvalidValue))
    ));
}

async fn loopback() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn frames_cross_a_tcp_socket_written_in_ragged_pieces() {
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7) as u8).collect();
    let messages = session_messages(&payload);
    let stream = wire(&messages).freeze();
    let (mut client, server) = loopback().await;
    let writer = tokio::spawn(async move {
        let mut rest = &stream[..];
        let mut step = 1;
        while !rest.is_empty() {
            let n = step.min(rest.len());
            client.write_all(&rest[..n]).await.unwrap();
            client.flush().await.unwrap();
            rest = &rest[n..];
            step = step * 3 % 1021 + 1;
        }
    });
    let frames: Vec<Frame> = FramedRead::new(server, SessionCodec::new()).map(|f| f.unwrap()).collect().await;
    writer.await.unwrap();
    let decoded: Vec<Message<'_>> = frames.iter().map(|f| f.message().unwrap()).collect();
    assert_eq!(decoded, messages);
}

#[tokio::test]
async fn a_stream_ending_inside_a_frame_is_truncated() {
    let stream = wire(&[
        Message::Eof { channel: 1 },
        Message::Data { channel: 1, stream: Stream::Stdout, payload: b"abc" },
    ]);
    let (mut client, server) = loopback().await;
    client.write_all(&stream[..stream.len() - 2]).await.unwrap();
    drop(client);
    let mut frames = FramedRead::new(server, SessionCodec::new());
    assert_eq!(frames.next().await.unwrap().unwrap().message(), Ok(Message::Eof { channel: 1 }));
    match frames.next().await {
        Some(Err(CodecError::Truncated { buffered: 8 })) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn data_buf_sends_the_payload_from_where_it_lies() {
    let codec = SessionCodec::new();
    let payload = Bytes::from(vec![0xab; 9_000]);
    let mut buf = codec.data_buf(3, Stream::Stdout, payload.clone()).unwrap();
    let (mut client, server) = loopback().await;
    client.write_all_buf(&mut buf).await.unwrap();
    drop(client);
    let frames: Vec<Frame> = FramedRead::new(server, SessionCodec::new()).map(|f| f.unwrap()).collect().await;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].channel(), 3);
    assert_eq!(frames[0].payload(), Some(payload));
    let too_big = Bytes::from(vec![0; 16_384]);
    assert!(matches!(codec.data_buf(3, Stream::Stdout, too_big), Err(CodecError::SendTooLarge { .. })));
}
