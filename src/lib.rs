//! gauntlet: load-testing and SLA verification for OpenAI-compatible LLM gateways.
//!
//! Data flows one way: `scenario` -> `engine` -> `metrics` -> `report`. `mock` (scripted
//! upstream providers) and `gateway` (the reference model router) depend only on `openai`,
//! `api` (the other LLM APIs, as encodings of a chat request), `config`, `net` and `tls`. `rundir` (the run folder's files) depends only on `metrics`, so the
//! engine and `report` both write through it. `observe` (the live exporter) depends only on
//! `metrics` and `net`; the engine feeds it. `probe` (probe mode) sits beside `engine` and
//! `report` and uses both.

pub mod api;
pub mod capacity;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod k8s;
pub mod metrics;
pub mod mock;
pub mod net;
pub mod observe;
pub mod openai;
pub mod probe;
pub mod report;
pub mod rundir;
pub mod scenario;
pub mod tls;
pub mod tokenizer;
pub mod workload;
