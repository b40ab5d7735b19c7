//! Tokenizer throughput in MB/s: the prompts of the shipped dataset (prose, documents, chat
//! turns, JSON tool arguments) counted with each vocabulary, and counted again from the memory
//! a mock keeps of texts it has seen.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gauntlet::tokenizer::{Encoding, Tokenizer};
use std::hint::black_box;

/// Every message text of datasets/chat-mix.jsonl, in file order.
fn texts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/chat-mix.jsonl");
    let file = std::fs::read_to_string(path).expect("datasets/chat-mix.jsonl");
    let mut out = Vec::new();
    for line in file.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for m in v["messages"].as_array().into_iter().flatten() {
            if let Some(t) = m["content"].as_str() {
                out.push(t.to_string());
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let texts = texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut g = c.benchmark_group("tokenize");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    for enc in [Encoding::O200k, Encoding::Cl100k] {
        let t = Tokenizer::new(enc).expect("embedded vocabulary");
        g.bench_function(enc.as_str(), |b| {
            b.iter(|| texts.iter().map(|s| t.count(black_box(s))).sum::<u64>())
        });
    }
    // What a mock pays for a prompt it has counted before (every dataset line after the
    // first pass): the same texts through the per-thread memory.
    let t = Tokenizer::new(Encoding::O200k).expect("embedded vocabulary");
    g.bench_function("o200k_base remembered", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|s| t.count_remembered(black_box(s)))
                .sum::<u64>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
