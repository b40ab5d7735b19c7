//! Mock upstream providers: fast, faithful OpenAI-compatible servers whose latency, token
//! rate and failures are scripted by a profile and changed at run time via a control API.

mod fault;

pub use fault::{FaultError, FaultKind, FaultKindName, FaultSpec, RateLimitCode, RawFault};
