//! gauntlet's integration tests, one binary: each module tells one part of the user's story
//! against real servers on loopback ports.

// Helpers outside `#[test]` functions too: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

mod clients;
mod engine;
mod gateway;
mod hardening;
mod layout;
mod mock;
mod report;
mod run_cli;
mod scenario;
mod scenarios_shipped;
mod sse;
mod support;
mod upstream_misbehaviour;
mod workload;
