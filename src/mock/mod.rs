//! Mock upstream providers: fast, faithful OpenAI-compatible servers whose latency, token
//! rate and failures are scripted by a profile and changed at run time via a control API.
//!
//! A mock serves `POST /v1/chat/completions` (and `/chat/completions`), the legacy text
//! completions (`completions`), embeddings (`embeddings`), Anthropic's
//! `POST /v1/messages` (`messages`), `GET /v1/models` and `GET /health`,
//! tags every response with `x-gauntlet-upstream` and `system_fingerprint`, and answers
//! bad input with OpenAI-shaped 4xx errors. Its control API lives on the same port under
//! `/__gauntlet/` (`GET stats`, `GET/POST/DELETE faults`, `DELETE faults/{id}`); faults never
//! apply to it, so an `outage` can always be lifted.
//!
//! Outages and resets are decided once a request has been read (a fault can be limited to
//! one model): an outage closes the connection without an answer, a reset aborts it with a
//! TCP RST. Prompt tokens are counted with the profile's BPE vocabulary (`tokenizer`, o200k by
//! default), text plus a fixed overhead per message, as a provider bills them; a
//! completion is exactly `max_tokens` long (finish reason `length`) when the request sets
//! it, else drawn from the profile's `completion.tokens` (finish reason `stop`).
//!
//! Beyond that, a profile may model real traffic (see `serve` for the timing model): prefill
//! time per prompt token, batch slots with a queue, decode slowdown as the batch fills, a
//! prefix cache (`cache`), tool calls and JSON answers (`answer`, `schema`) and reasoning
//! tokens streamed before the content.

mod answer;
mod body;
mod cache;
mod chat;
mod client;
mod completions;
mod conn;
mod control;
mod embeddings;
mod fault;
mod fleet;
mod forward;
mod handler;
mod inject;
mod limits;
mod messages;
mod pacer;
mod profile;
mod provider;
mod reply;
mod request;
mod respond;
mod responses;
mod schema;
mod serve;
mod server;
mod state;
mod stats;
mod words;

pub use client::{ControlClient, ControlError};
pub use control::TOKEN_HEADER;
pub use fault::{FaultError, FaultKind, FaultKindName, FaultSpec, RateLimitCode, RawFault};
pub use fleet::{FleetEntry, FleetSource, MockFleet};
pub use forward::MAX_FORWARD_BODY;
pub use inject::{FaultEntry, FaultId};
pub use profile::{
    Capacity, DEFAULT_EMBEDDING_DIMENSIONS, DEFAULT_MAX_BODY_BYTES, ModelProfile, Profile,
    ProfileLimits,
};
pub use provider::{Forward, ForwardError};
pub use server::{MockError, MockHandle, start, start_proxy, start_tls};
pub use stats::{MockStats, RequestOutcome, UNKNOWN_MODEL};
