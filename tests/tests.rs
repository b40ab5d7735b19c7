//! gauntlet's integration tests, one binary: each module tells one part of the user's story
//! against real servers on loopback ports.

// Helpers outside `#[test]` functions too: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

mod apis;
mod arrivals;
mod bakeoff;
mod capacity;
mod ci_examples;
mod clients;
mod cluster_docker;
mod cluster_live;
mod engine;
mod gateway;
mod gateway_apis;
mod hardening;
mod k8s;
mod layout;
mod live;
mod measures;
mod mock;
mod mock_traffic;
mod native_histograms;
mod otlp;
mod overhead;
mod probe;
mod promises;
mod proxy;
mod report;
mod responses;
mod run_cli;
mod savings;
mod scenario;
mod scenarios_shipped;
mod shard_merge;
mod source_ips;
mod sse;
mod summary_numbers;
mod support;
mod sut;
mod tiers;
mod tls;
mod translation;
mod tui;
mod upstream_misbehaviour;
mod workload;
