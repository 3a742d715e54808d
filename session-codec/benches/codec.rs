//! Decode and encode of Data frames (1 B to 64 KiB payloads) and of Resize, each beside its
//! baselines in the same run:
//!
//! - `length_delimited`: tokio-util's `LengthDelimitedCodec` on frames of the same size, the floor
//!   for framing with no typed parsing (decode includes `freeze`, as ours does);
//! - `naive`: what a hurried implementer writes: decode into an owned struct whose payload is a
//!   `Vec<u8>` (Resize through serde and postcard);
//! - `memcpy` (encode only): copying the payload into the output buffer, the floor for an encoder
//!   that writes into a contiguous buffer.
//!
//! Each iteration works through a batch of frames; `Throughput::Elements` is the batch size, so
//! `benches/summarize.py` can report time per frame.

use core::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use session_codec::SessionCodec;
use session_codec::proto::{Message, Stream, WindowSize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const SIZES: [usize; 5] = [1, 64, 1024, 16 * 1024, 64 * 1024];

/// Frames per batch: enough to amortise the batch set-up, about 1 MiB of frames at most.
fn batch_len(frame_len: usize) -> usize {
    (1 << 20) / frame_len.max(1)
}

fn codec() -> SessionCodec {
    let mut codec = SessionCodec::new().with_max_frame(1 << 20);
    codec.set_peer_max_frame(1 << 20);
    codec
}

fn length_delimited() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(1 << 20).new_codec()
}

/// `count` copies of `message` on the wire, in our format and in LengthDelimitedCodec's with a
/// body of the same length.
fn wires(message: Message<'_>, count: usize) -> (BytesMut, BytesMut) {
    let (mut ours, mut theirs) = (BytesMut::new(), BytesMut::new());
    let body = Bytes::from(vec![0x5a; message.encoded_len() - 6]);
    for _ in 0..count {
        codec().encode(message, &mut ours).unwrap();
        length_delimited().encode(body.clone(), &mut theirs).unwrap();
    }
    (ours, theirs)
}

struct NaiveData {
    channel: u16,
    stream: u8,
    payload: Vec<u8>,
}

fn naive_decode_data(buf: &mut BytesMut) -> Option<NaiveData> {
    let len = usize::from(*buf.first()?) << 16 | usize::from(*buf.get(1)?) << 8 | usize::from(*buf.get(2)?);
    if buf.len() < 6 + len {
        return None;
    }
    let frame = buf.split_to(6 + len);
    Some(NaiveData {
        channel: u16::from_be_bytes([frame[4], frame[5]]),
        stream: frame[6],
        payload: frame[7..].to_vec(),
    })
}

#[derive(serde::Deserialize)]
struct NaiveResize {
    cols: u16,
    rows: u16,
    width_px: u16,
    height_px: u16,
}

fn naive_decode_resize(buf: &mut BytesMut) -> Option<(u16, NaiveResize)> {
    let len = usize::from(*buf.get(2)?);
    if buf.len() < 6 + len {
        return None;
    }
    let frame = buf.split_to(6 + len);
    Some((u16::from_be_bytes([frame[4], frame[5]]), postcard::from_bytes(&frame[6..]).ok()?))
}

fn decode_group(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    message: Message<'_>,
    naive: fn(&mut BytesMut) -> bool,
) {
    let count = batch_len(message.encoded_len());
    let (ours, theirs) = wires(message, count);
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function(format!("session/{id}"), |b| {
        let mut codec = codec();
        b.iter_batched(
            || ours.clone(),
            |mut buf| {
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    black_box(frame);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function(format!("length_delimited/{id}"), |b| {
        let mut codec = length_delimited();
        b.iter_batched(
            || theirs.clone(),
            |mut buf| {
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    black_box(frame.freeze());
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function(format!("naive/{id}"), |b| {
        b.iter_batched(|| ours.clone(), |mut buf| while naive(&mut buf) {}, BatchSize::LargeInput)
    });
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for size in SIZES {
        let payload = vec![0x5a; size];
        let data = Message::Data { channel: 1, stream: Stream::Stdout, payload: &payload };
        decode_group(&mut group, &format!("data_{size}"), data, |buf| {
            naive_decode_data(buf).map(|d| black_box((d.channel, d.stream, d.payload))).is_some()
        });
    }
    let resize = Message::Resize {
        channel: 1,
        size: WindowSize { cols: 200, rows: 50, width_px: 1600, height_px: 900 },
    };
    decode_group(&mut group, "resize", resize, |buf| {
        naive_decode_resize(buf)
            .map(|(ch, r)| black_box((ch, r.cols, r.rows, r.width_px, r.height_px)))
            .is_some()
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let resize = Message::Resize {
        channel: 1,
        size: WindowSize { cols: 200, rows: 50, width_px: 1600, height_px: 900 },
    };
    let payloads: Vec<(String, Vec<u8>)> =
        SIZES.iter().map(|&s| (format!("data_{s}"), vec![0x5a; s])).collect();
    let mut cases: Vec<(&str, Message<'_>, Bytes)> = payloads
        .iter()
        .map(|(id, p)| {
            (
                id.as_str(),
                Message::Data { channel: 1, stream: Stream::Stdout, payload: p },
                Bytes::from(p.clone()),
            )
        })
        .collect();
    cases.push(("resize", resize, Bytes::from(vec![0x5a; resize.encoded_len() - 6])));
    for (id, message, body) in cases {
        let count = batch_len(message.encoded_len());
        let room = count * (message.encoded_len() + 8);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("session/{id}"), |b| {
            let mut codec = codec();
            b.iter_batched_ref(
                || BytesMut::with_capacity(room),
                |dst| (0..count).for_each(|_| codec.encode(black_box(message), dst).unwrap()),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("length_delimited/{id}"), |b| {
            let mut codec = length_delimited();
            b.iter_batched_ref(
                || BytesMut::with_capacity(room),
                |dst| (0..count).for_each(|_| codec.encode(black_box(body.clone()), dst).unwrap()),
                BatchSize::LargeInput,
            )
        });
        if let Message::Data { payload, .. } = message {
            group.bench_function(format!("memcpy/{id}"), |b| {
                b.iter_batched_ref(
                    || BytesMut::with_capacity(room),
                    |dst| (0..count).for_each(|_| dst.extend_from_slice(black_box(payload))),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(core::time::Duration::from_millis(500))
        .measurement_time(core::time::Duration::from_secs(2))
        .sample_size(30);
    targets = decode, encode
}
criterion_main!(benches);
