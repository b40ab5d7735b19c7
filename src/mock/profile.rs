//! Provider profiles (`mock-upstreams/*.toml`): the models a mock serves and their prices,
//! its latency and token-rate model, completion lengths, limits and default faults.

use std::num::{NonZeroU32, NonZeroU64};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Check, ConfigErrors, Dist, DurationDist, RawDist, Source};
use crate::tokenizer::Encoding;

use super::fault::{FaultSpec, RawFault};

/// One model a provider serves, with its list price.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProfile {
    pub name: String,
    /// US dollars per 1M prompt tokens.
    pub input_price_per_m: f64,
    /// US dollars per 1M completion tokens.
    pub output_price_per_m: f64,
    /// US dollars per 1M prompt tokens served from the prefix cache; `None` means the input price.
    pub cached_input_price_per_m: Option<f64>,
    /// Prompt plus completion tokens the model accepts; `None` means unlimited. An embeddings
    /// request is held to it input by input.
    pub context_window: Option<u32>,
    /// Length of the vectors `POST /v1/embeddings` answers (a request's `dimensions` may ask
    /// for fewer).
    pub embedding_dimensions: u32,
}

/// OpenAI's `text-embedding-3-small` and `ada-002` size.
pub const DEFAULT_EMBEDDING_DIMENSIONS: u32 = 1536;
/// Larger than any embedding model ships; a bigger number is a typo.
const MAX_EMBEDDING_DIMENSIONS: u32 = 65536;

/// ProfileLimits the provider enforces with real errors.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileLimits {
    /// Requests handled at once; more are answered 429.
    pub concurrency: Option<NonZeroU32>,
    /// Per API key, as OpenAI counts them.
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_minute: Option<NonZeroU32>,
    /// Answer 401 to requests without `Authorization: Bearer ...`.
    pub require_api_key: bool,
    /// Request bodies above this are answered 413.
    pub max_body_bytes: usize,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Default for ProfileLimits {
    fn default() -> Self {
        Self {
            concurrency: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            require_api_key: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A compiled provider profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub seed: u64,
    /// The vocabulary prompt tokens are counted with (`usage.prompt_tokens`, prefill, the
    /// prefix cache, tokens-per-minute limits).
    pub tokenizer: Encoding,
    pub models: Vec<ModelProfile>,
    /// Time to first token.
    pub ttft: DurationDist,
    /// Generation speed, sampled once per request.
    pub tokens_per_second: Dist,
    /// Completion length when the request sets no `max_tokens`.
    pub completion_tokens: Dist,
    /// Prompt tokens read per second before the first token; `None` means prefill is free.
    pub prefill_tokens_per_second: Option<f64>,
    /// How a busy provider slows down.
    pub capacity: Capacity,
    /// Share of requests carrying `tools` (with `tool_choice` auto) answered with a tool call.
    pub tool_call_rate: f64,
    /// Tokens a reasoning model thinks before it answers, on top of the completion.
    pub reasoning_tokens: Option<Dist>,
    pub limits: ProfileLimits,
    /// Faults active from the start (each gets an id and can be removed at run time).
    pub faults: Vec<FaultSpec>,
}

/// Batch slots, decode slowdown and prefix cache: what makes a provider slower when busy and
/// faster for a prompt it has seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capacity {
    /// Sequences decoded at once; further requests queue for a slot (their TTFT includes the wait).
    pub max_concurrent: Option<NonZeroU32>,
    /// Each running sequence beyond the first divides the token rate by `1 + decode_slowdown`
    /// once more, linearly: rate / (1 + decode_slowdown * (running - 1)).
    pub decode_slowdown: f64,
    /// Tokens of prompt prefixes remembered (least recently used forgotten first).
    pub prefix_cache_tokens: Option<NonZeroU64>,
}

impl Profile {
    /// Reads and validates a profile file, reporting every problem with file:line:col.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let src = Source::read(path)?;
        Self::parse(&src)
    }

    /// Validates a profile already read (tests and embedded profiles use this).
    pub fn parse(src: &Source) -> Result<Self, ConfigErrors> {
        let raw: RawProfile = src.parse_toml()?;
        compile(src, raw)
    }

    pub fn model(&self, name: &str) -> Option<&ModelProfile> {
        self.models.iter().find(|m| m.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    #[serde(default)]
    seed: u64,
    tokenizer: Option<Spanned<String>>,
    models: Spanned<Vec<Spanned<RawModel>>>,
    latency: Option<RawLatency>,
    completion: Option<RawCompletion>,
    capacity: Option<RawCapacity>,
    limits: Option<RawLimits>,
    #[serde(default)]
    faults: Vec<Spanned<RawFault>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: Spanned<String>,
    input_price_per_m: Spanned<f64>,
    output_price_per_m: Spanned<f64>,
    cached_input_price_per_m: Option<Spanned<f64>>,
    context_window: Option<Spanned<u32>>,
    embedding_dimensions: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    ttft: Option<Spanned<RawDist>>,
    tokens_per_second: Option<Spanned<RawDist>>,
    prefill_tokens_per_second: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompletion {
    tokens: Option<Spanned<RawDist>>,
    tool_call_rate: Option<Spanned<f64>>,
    reasoning_tokens: Option<Spanned<RawDist>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    max_concurrent: Option<Spanned<u32>>,
    decode_slowdown: Option<Spanned<f64>>,
    prefix_cache_tokens: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    concurrency: Option<Spanned<u32>>,
    requests_per_minute: Option<Spanned<u32>>,
    tokens_per_minute: Option<Spanned<u32>>,
    #[serde(default)]
    require_api_key: bool,
    max_body_bytes: Option<Spanned<u64>>,
}

/// Whether samples below zero are likely (more than about one in 40 000 for a normal).
fn can_go_negative(d: &Dist) -> bool {
    match *d {
        Dist::Fixed { value } => value < 0.0,
        Dist::Uniform { min, .. } => min < 0.0,
        Dist::Normal { mean, stddev } => mean - 4.0 * stddev < 0.0,
        Dist::LogNormal { .. } => false,
    }
}

fn compile_capacity(check: &mut Check, raw: Option<RawCapacity>) -> Capacity {
    let Some(raw) = raw else {
        return Capacity::default();
    };
    let max_concurrent = raw.max_concurrent.as_ref().and_then(|n| {
        let v = NonZeroU32::new(*n.get_ref());
        if v.is_none() {
            check.error(
                n.span(),
                "capacity.max_concurrent",
                "must be at least 1 (leave it out for no batch limit)",
            );
        }
        v
    });
    let decode_slowdown = raw
        .decode_slowdown
        .as_ref()
        .and_then(|d| check.number_in(d, "capacity.decode_slowdown", 0.0..=10.0))
        .unwrap_or(0.0);
    let prefix_cache_tokens = raw.prefix_cache_tokens.as_ref().and_then(|n| {
        let v = NonZeroU64::new(*n.get_ref()).filter(|v| v.get() <= MAX_CACHE_TOKENS);
        if v.is_none() {
            check.error(
                n.span(),
                "capacity.prefix_cache_tokens",
                format!("must be 1..={MAX_CACHE_TOKENS} (leave it out for no cache)"),
            );
        }
        v
    });
    Capacity {
        max_concurrent,
        decode_slowdown,
        prefix_cache_tokens,
    }
}

/// An entry (one message prefix, at least 4 tokens) costs under 100 bytes: at most ~2.5 GB.
const MAX_CACHE_TOKENS: u64 = 100_000_000;
const MAX_PREFILL_TOKENS_PER_SECOND: f64 = 1e9;

/// Token rates above this are not a model, they are a typo.
const MAX_TOKENS_PER_SECOND: f64 = 1e6;
const MAX_COMPLETION_TOKENS: f64 = 1e6;
const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// The mock's fleet and server check names with the same rule as every config file.
pub(crate) use crate::config::valid_name;

fn compile(src: &Source, raw: RawProfile) -> Result<Profile, ConfigErrors> {
    let mut check = Check::new(src);

    check.name(&raw.name, "name");
    let tokenizer = raw
        .tokenizer
        .as_ref()
        .and_then(|t| check.encoding(t, "tokenizer"))
        .unwrap_or_default();

    let mut models: Vec<ModelProfile> = Vec::new();
    if raw.models.get_ref().is_empty() {
        check.error(
            raw.models.span(),
            "models",
            "a provider must serve at least one model; add a [[models]] table",
        );
    }
    for (i, m) in raw.models.get_ref().iter().enumerate() {
        let m = m.get_ref();
        let key = |f: &str| format!("models[{i}].{f}");
        let name = m.name.get_ref().trim();
        if name.is_empty() || name.len() > 256 {
            check.error(m.name.span(), key("name"), "must be 1-256 characters");
        } else if models.iter().any(|x| x.name == name) {
            check.error(
                m.name.span(),
                key("name"),
                format!("model {name:?} is listed twice"),
            );
        }
        let input = check.number_in(&m.input_price_per_m, &key("input_price_per_m"), 0.0..=1e4);
        let output = check.number_in(&m.output_price_per_m, &key("output_price_per_m"), 0.0..=1e4);
        let cached_input_price_per_m = m
            .cached_input_price_per_m
            .as_ref()
            .and_then(|p| check.number_in(p, &key("cached_input_price_per_m"), 0.0..=1e4));
        let context_window = match &m.context_window {
            Some(w) if *w.get_ref() == 0 => {
                check.error(w.span(), key("context_window"), "must be at least 1 token");
                None
            }
            Some(w) => Some(*w.get_ref()),
            None => None,
        };
        let embedding_dimensions = match &m.embedding_dimensions {
            Some(d) if !(1..=MAX_EMBEDDING_DIMENSIONS).contains(d.get_ref()) => {
                check.error(
                    d.span(),
                    key("embedding_dimensions"),
                    format!(
                        "{} is out of range; allowed 1..={MAX_EMBEDDING_DIMENSIONS}",
                        d.get_ref()
                    ),
                );
                DEFAULT_EMBEDDING_DIMENSIONS
            }
            Some(d) => *d.get_ref(),
            None => DEFAULT_EMBEDDING_DIMENSIONS,
        };
        if let (Some(input_price_per_m), Some(output_price_per_m)) = (input, output) {
            models.push(ModelProfile {
                name: name.to_string(),
                input_price_per_m,
                output_price_per_m,
                cached_input_price_per_m,
                context_window,
                embedding_dimensions,
            });
        }
    }

    let latency = raw.latency.unwrap_or(RawLatency {
        ttft: None,
        tokens_per_second: None,
        prefill_tokens_per_second: None,
    });
    let prefill_tokens_per_second = latency.prefill_tokens_per_second.as_ref().and_then(|p| {
        check.number_in(
            p,
            "latency.prefill_tokens_per_second",
            1.0..=MAX_PREFILL_TOKENS_PER_SECOND,
        )
    });
    let ttft = match &latency.ttft {
        Some(d) => check.duration_dist(d, "latency.ttft"),
        None => Some(DurationDist(Dist::fixed(0.0))),
    };
    let tokens_per_second = match &latency.tokens_per_second {
        Some(d) => check
            .number_dist(d, "latency.tokens_per_second", MAX_TOKENS_PER_SECOND)
            .and_then(|dist| {
                if dist.median() <= 0.0 {
                    check.error(
                        d.span(),
                        "latency.tokens_per_second",
                        "the typical token rate must be above zero",
                    );
                    None
                } else {
                    Some(dist)
                }
            }),
        None => Some(Dist::fixed(MAX_TOKENS_PER_SECOND)),
    };

    let completion = raw.completion.unwrap_or(RawCompletion {
        tokens: None,
        tool_call_rate: None,
        reasoning_tokens: None,
    });
    let completion_tokens = match &completion.tokens {
        Some(d) => check.number_dist(d, "completion.tokens", MAX_COMPLETION_TOKENS),
        None => Some(Dist::fixed(16.0)),
    };
    let tool_call_rate = completion
        .tool_call_rate
        .as_ref()
        .and_then(|r| check.number_in(r, "completion.tool_call_rate", 0.0..=1.0))
        .unwrap_or(0.0);
    let reasoning_tokens = completion.reasoning_tokens.as_ref().and_then(|d| {
        let key = "completion.reasoning_tokens";
        let dist = check.number_dist(d, key, MAX_COMPLETION_TOKENS)?;
        if can_go_negative(&dist) {
            check.error(
                d.span(),
                key,
                "this distribution can produce negative token counts; use lognormal or uniform from 0",
            );
            return None;
        }
        Some(dist)
    });
    let capacity = compile_capacity(&mut check, raw.capacity);

    let mut limits = ProfileLimits::default();
    if let Some(l) = raw.limits {
        let mut nonzero = |v: &Option<Spanned<u32>>, key: &str| match v {
            Some(s) => match NonZeroU32::new(*s.get_ref()) {
                Some(n) => Some(n),
                None => {
                    check.error(
                        s.span(),
                        key,
                        "must be at least 1 (leave it out for no limit)",
                    );
                    None
                }
            },
            None => None,
        };
        limits.concurrency = nonzero(&l.concurrency, "limits.concurrency");
        limits.requests_per_minute = nonzero(&l.requests_per_minute, "limits.requests_per_minute");
        limits.tokens_per_minute = nonzero(&l.tokens_per_minute, "limits.tokens_per_minute");
        limits.require_api_key = l.require_api_key;
        if let Some(b) = &l.max_body_bytes {
            let v = *b.get_ref();
            if (1024..=MAX_BODY_LIMIT).contains(&v) {
                limits.max_body_bytes = usize::try_from(v).unwrap_or(DEFAULT_MAX_BODY_BYTES);
            } else {
                check.error(
                    b.span(),
                    "limits.max_body_bytes",
                    format!("{v} is out of range; allowed 1024..={MAX_BODY_LIMIT}"),
                );
            }
        }
    }

    let mut faults = Vec::new();
    for (i, f) in raw.faults.iter().enumerate() {
        match f.get_ref().compile() {
            Ok(spec) => faults.push(spec),
            Err(e) => check.error(
                f.span(),
                format!("faults[{i}].{}", e.field),
                e.message.clone(),
            ),
        }
    }

    let value = match (ttft, tokens_per_second, completion_tokens) {
        (Some(ttft), Some(tokens_per_second), Some(completion_tokens)) => Some(Profile {
            name: raw.name.into_inner(),
            seed: raw.seed,
            tokenizer,
            models,
            ttft,
            tokens_per_second,
            completion_tokens,
            prefill_tokens_per_second,
            capacity,
            tool_call_rate,
            reasoning_tokens,
            limits,
            faults,
        }),
        _ => None,
    };
    match (check.finish(()), value) {
        (Ok(()), Some(p)) => Ok(p),
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(ConfigErrors(vec![src.error_at(
            0..0,
            "",
            "invalid profile",
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, ConfigErrors> {
        Profile::parse(&Source::new("p.toml", text))
    }

    #[test]
    fn full_profile_compiles() {
        let p = parse(
            r#"
            name = "deepseek-v4-flash"
            seed = 3
            [[models]]
            name = "deepseek-v4-flash"
            input_price_per_m = 0.2
            output_price_per_m = 0.3
            context_window = 65536
            [latency]
            ttft = { dist = "lognormal", median = "40ms", p99 = "150ms" }
            tokens_per_second = 400
            [completion]
            tokens = { dist = "uniform", min = 10, max = 100 }
            [limits]
            concurrency = 100
            requests_per_minute = 600
            [[faults]]
            kind = "error"
            rate = 0.01
            "#,
        )
        .unwrap();
        assert_eq!(p.models[0].context_window, Some(65536));
        assert_eq!(p.tokens_per_second, Dist::fixed(400.0));
        assert_eq!(p.limits.requests_per_minute.map(NonZeroU32::get), Some(600));
        assert_eq!(p.faults.len(), 1);
    }

    #[test]
    fn errors_are_located_and_all_reported() {
        let e = parse(
            "name = \"x\"\n[[models]]\nname = \"m\"\ninput_price_per_m = -1\noutput_price_per_m = 1\n\
             [latency]\nttft = 40\n[[faults]]\nkind = \"error\"\nstatus = 200\n",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.toml:4:21: `models[0].input_price_per_m`"),
            "{text}"
        );
        assert!(text.contains("p.toml:7:8: `latency.ttft`"), "{text}");
        assert!(text.contains("`faults[0].status`"), "{text}");
    }

    #[test]
    fn a_cached_input_price_is_optional_and_checked() {
        let model = |extra: &str| {
            format!(
                "name = \"x\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
                 output_price_per_m = 2\n{extra}"
            )
        };
        let p = parse(&model("cached_input_price_per_m = 0.25\n")).unwrap();
        assert_eq!(p.models[0].cached_input_price_per_m, Some(0.25));
        assert_eq!(
            parse(&model("")).unwrap().models[0].cached_input_price_per_m,
            None
        );
        let e = parse(&model("cached_input_price_per_m = -0.5\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("p.toml:6:28: `models[0].cached_input_price_per_m`"),
            "{e}"
        );
    }

    #[test]
    fn embedding_dimensions_default_to_1536_and_a_bad_size_is_located() {
        let model = |extra: &str| {
            format!(
                "name = \"x\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
                 output_price_per_m = 0\n{extra}"
            )
        };
        assert_eq!(
            parse(&model("")).unwrap().models[0].embedding_dimensions,
            1536
        );
        let p = parse(&model("embedding_dimensions = 3072\n")).unwrap();
        assert_eq!(p.models[0].embedding_dimensions, 3072);
        for bad in ["0", "65537"] {
            let e = parse(&model(&format!("embedding_dimensions = {bad}\n"))).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("p.toml:6:24: `models[0].embedding_dimensions`"),
                "{text}"
            );
            assert!(text.contains("1..=65536"), "{text}");
        }
    }

    #[test]
    fn traffic_keys_compile_and_bad_ones_are_located() {
        let p = parse(
            "name = \"x\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 1\n\
             cached_input_price_per_m = 0.1\n[latency]\nprefill_tokens_per_second = 5000\n\
             [completion]\ntool_call_rate = 0.5\nreasoning_tokens = { dist = \"uniform\", min = 0, max = 9 }\n\
             [capacity]\nmax_concurrent = 4\ndecode_slowdown = 0.1\nprefix_cache_tokens = 1000\n",
        )
        .unwrap();
        assert_eq!(p.models[0].cached_input_price_per_m, Some(0.1));
        assert_eq!(p.prefill_tokens_per_second, Some(5000.0));
        assert_eq!(p.capacity.max_concurrent.map(NonZeroU32::get), Some(4));
        assert_eq!(
            p.capacity.prefix_cache_tokens.map(NonZeroU64::get),
            Some(1000)
        );
        assert_eq!((p.tool_call_rate, p.capacity.decode_slowdown), (0.5, 0.1));
        assert!(p.reasoning_tokens.is_some());

        let e = parse(
            "name = \"x\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 1\n\
             [completion]\ntool_call_rate = 2\nreasoning_tokens = { dist = \"normal\", mean = 10, stddev = 20 }\n\
             [capacity]\nmax_concurrent = 0\nprefix_cache_tokens = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.toml:7:18: `completion.tool_call_rate`"),
            "{e}"
        );
        assert!(
            e.contains("p.toml:8:20: `completion.reasoning_tokens`"),
            "{e}"
        );
        assert!(e.contains("negative"), "{e}");
        assert!(e.contains("p.toml:10:18: `capacity.max_concurrent`"), "{e}");
        assert!(e.contains("`capacity.prefix_cache_tokens`"), "{e}");
    }

    #[test]
    fn the_tokenizer_is_o200k_unless_named_and_a_wrong_name_is_located() {
        let m = "[[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 1\n";
        let p = parse(&format!("name = \"x\"\n{m}")).unwrap();
        assert_eq!(p.tokenizer, Encoding::O200k);
        let p = parse(&format!("name = \"x\"\ntokenizer = \"cl100k_base\"\n{m}")).unwrap();
        assert_eq!(p.tokenizer, Encoding::Cl100k);
        let e = parse(&format!("name = \"x\"\ntokenizer = \"gpt2\"\n{m}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml:2:13: `tokenizer`"), "{e}");
        assert!(e.contains("o200k_base or cl100k_base"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let e = parse("name = \"x\"\nsed = 1\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("did you mean `seed`"), "{e}");
    }
}
