//! Decoder throughput in MB/s on a realistic OpenAI stream (one JSON chunk per event),
//! fed in network-sized reads and, as a worst case, in tiny reads.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gauntlet::openai::{ChatChunk, ChunkChoice, Delta, SseDecoder, encode_json};
use std::hint::black_box;

fn stream_bytes(events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..events {
        let chunk = ChatChunk {
            id: "chatcmpl-0123456789abcdef".into(),
            object: "chat.completion.chunk".into(),
            created: 1_700_000_000,
            model: "deepseek-v4-flash".into(),
            system_fingerprint: Some("gauntlet-deepseek".into()),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    role: None,
                    content: Some(format!(" token{i}")),
                    ..Delta::default()
                },
                finish_reason: None,
                logprobs: None,
            }],
            usage: None,
        };
        out.extend_from_slice(&encode_json(&chunk).expect("serialise"));
    }
    out.extend_from_slice(gauntlet::openai::DONE);
    out
}

fn bench(c: &mut Criterion) {
    let bytes = stream_bytes(2_000);
    let mut g = c.benchmark_group("sse_decode");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    for read in [16 * 1024, 64] {
        g.bench_function(format!("reads_of_{read}_bytes"), |b| {
            b.iter(|| {
                let mut d = SseDecoder::new();
                let mut n = 0usize;
                for part in bytes.chunks(read) {
                    d.feed(black_box(part), |e| n += e.data.len())
                        .expect("valid stream");
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
