//! One measured request as the engine hands it to the recorder, the closed set of ways a
//! request can fail, and how requests' tokens add up (the gateway's and the baseline's
//! recordings both tally them).

use std::time::Duration;

/// How a request failed. Every request is exactly one of these, or a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A 4xx other than 429.
    Status4xx,
    /// A 429, from the gateway or a provider.
    RateLimited,
    Status5xx,
    /// No complete answer before the per-request deadline.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection was dropped before a response arrived.
    Reset,
    /// A 2xx whose body stopped before it was complete (a stream without `[DONE]`).
    Truncated,
    /// A 2xx whose body is not a well-formed completion (bad JSON, too large, bad events).
    Malformed,
}

impl ErrorKind {
    pub const COUNT: usize = 8;
    pub const ALL: [ErrorKind; Self::COUNT] = [
        Self::Status4xx,
        Self::RateLimited,
        Self::Status5xx,
        Self::Timeout,
        Self::Connect,
        Self::Reset,
        Self::Truncated,
        Self::Malformed,
    ];

    /// The name used in `summary.json` and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status4xx => "status_4xx",
            Self::RateLimited => "rate_limited",
            Self::Status5xx => "status_5xx",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which upstream served a response: an index into the names the recorder was given (no
/// allocation on the hot path), or a name nobody announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedBy {
    Known(u16),
    Other(Box<str>),
}

/// A connection a request had to open before it could be sent: what it cost, and whether TLS
/// resumed an earlier session. Reused connections cost nothing and leave this unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// TCP connect, TLS handshake and HTTP/2 preface, as the request waited for them.
    pub took: Duration,
    pub tls: Option<TlsSession>,
}

/// How a TLS handshake went: a full one, or a resumption (no certificate exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSession {
    Full,
    Resumed,
}

/// Which way a request went: through the system under test, or around it to the class's
/// primary upstream (`[load] baseline = "direct"`), whose samples count only as the baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    #[default]
    Gateway,
    Direct,
}

/// One sent request, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the request class.
    pub class: usize,
    /// Intended send time on the run's clock (t = 0 at the start of the plan).
    pub intended: Duration,
    /// Actual send time - intended send time.
    pub lag: Duration,
    /// Intended send time -> last byte (or the failure).
    pub latency: Duration,
    /// Intended send time -> first delta of any kind: content, reasoning or tool call (streams).
    pub ttft: Option<Duration>,
    /// Intended send time -> first content or tool-call delta, after any reasoning (streams).
    pub ttfot: Option<Duration>,
    /// Mean time per output token after the first: (last token - first output token) / (tokens - 1).
    pub tpot: Option<Duration>,
    /// Gaps between output deltas (streams); empty otherwise, so no allocation.
    pub itl: Vec<Duration>,
    pub result: Result<(), ErrorKind>,
    pub served_by: Option<ServedBy>,
    /// A 429 that no upstream tagged: the gateway itself refused.
    pub gateway_rate_limited: bool,
    /// The gateway shed it (`x-gateway-shed`): refused at once by tier admission.
    pub gateway_shed: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// 1-based turn of a conversation; None for a request that is not part of one.
    pub turn: Option<u16>,
    /// Prompt tokens the provider served from its prefix cache (usage.prompt_tokens_details.cached_tokens).
    pub cached_tokens: u64,
    /// Output tokens spent reasoning (usage.completion_tokens_details.reasoning_tokens).
    pub reasoning_tokens: u64,
    /// Where prompt_tokens came from.
    pub prompt_tokens_from: TokenSource,
    /// The connection it opened, when it could not reuse one.
    pub opened: Option<Opened>,
    pub route: Via,
    /// The wait a 429 asked for (`retry-after-ms` or `retry-after`), in milliseconds, which a
    /// probe honours. Milliseconds in four bytes fit the padding of this struct: a
    /// `Duration` would grow every sample the recorder channel carries by a sixth.
    pub retry_after_ms: Option<std::num::NonZeroU32>,
}

/// Where a sample's prompt token count came from: the provider's `usage`, or gauntlet's own
/// tokenizer when the response carried none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenSource {
    Usage,
    #[default]
    Tokenizer,
}

impl TokenSource {
    /// The name used in `requests.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Tokenizer => "tokenizer",
        }
    }
}

impl Sample {
    /// A sample with only the timing and result set; the client fills in the rest.
    pub fn new(class: usize, intended: Duration, lag: Duration) -> Self {
        Self {
            class,
            intended,
            lag,
            latency: Duration::ZERO,
            ttft: None,
            ttfot: None,
            tpot: None,
            itl: Vec::new(),
            result: Ok(()),
            served_by: None,
            gateway_rate_limited: false,
            gateway_shed: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            turn: None,
            cached_tokens: 0,
            reasoning_tokens: 0,
            prompt_tokens_from: TokenSource::Tokenizer,
            opened: None,
            route: Via::Gateway,
            retry_after_ms: None,
        }
    }

    /// The tokens the answer reported, as the summary counts them.
    pub fn tokens(&self) -> super::Tokens {
        super::Tokens {
            prompt: self.prompt_tokens,
            completion: self.completion_tokens,
            cached: self.cached_tokens,
            reasoning: self.reasoning_tokens,
        }
    }

    /// The wait a 429 asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .map(|ms| Duration::from_millis(u64::from(ms.get())))
    }
}

/// Token totals of a class's requests, and where their prompt counts came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub reasoning: u64,
    /// Requests whose prompt count came from the response's usage, or from the tokenizer.
    pub prompt_from_usage: u64,
    pub prompt_from_tokenizer: u64,
}

impl TokenCounts {
    pub(super) fn record(&mut self, s: &Sample) {
        self.prompt += s.prompt_tokens;
        self.completion += s.completion_tokens;
        self.cached += s.cached_tokens;
        self.reasoning += s.reasoning_tokens;
        match s.prompt_tokens_from {
            TokenSource::Usage => self.prompt_from_usage += 1,
            TokenSource::Tokenizer => self.prompt_from_tokenizer += 1,
        }
    }

    pub fn merge(&mut self, o: &TokenCounts) {
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.cached += o.cached;
        self.reasoning += o.reasoning;
        self.prompt_from_usage += o.prompt_from_usage;
        self.prompt_from_tokenizer += o.prompt_from_tokenizer;
    }
}
