//! OpenAI's embeddings API (`POST /v1/embeddings`): a text, a batch of texts or token ids in,
//! one unit vector per input out, of the model's `embedding_dimensions` (or fewer, when the
//! request's `dimensions` asks), as JSON floats or base64 (what the openai SDKs ask for).
//! A vector is a function of the model and the input's text, so the same input always gets
//! the same vector; a shortened one is the full one cut and renormalised, as OpenAI's are.
//! Timing is the time to first token alone (`ttft` plus prefill); nothing streams, so the
//! stream-only faults leave it alone.

use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use http::header::CONTENT_TYPE;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::openai::{ApiError, ApiErrorKind, MAX_PROMPTS, Prompt, Prompts};
use crate::tokenizer::Tokenizer;

use super::body::MockBody;
use super::inject::{Action, FaultPlan};
use super::profile::ModelProfile;
use super::reply::{put_dec, put_json_str};
use super::respond::JSON;
use super::state::{InFlight, MockState};
use super::stats::RequestOutcome;

/// Numbers one answer may hold (inputs × dimensions): OpenAI's largest batch of its largest
/// model is 6.3 M; beyond this an answer would be hundreds of megabytes.
const MAX_NUMBERS: u64 = 1 << 23;

#[derive(Deserialize)]
struct RawEmbeddingsRequest<'a> {
    model: String,
    #[serde(borrow)]
    input: &'a RawValue,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// An embeddings request whose shape has been checked.
pub(crate) struct EmbeddingsRequest {
    pub model: String,
    inputs: Prompts,
    dimensions: Option<u32>,
    base64: bool,
}

/// What an admitted request costs and returns.
pub(crate) struct EmbeddingSize {
    pub prompt_tokens: u32,
    dimensions: u32,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::InvalidRequest, message).with_param(param)
}

/// Reads the body, refusing what OpenAI refuses: no input, an empty one, more than 2048, an
/// unknown encoding.
pub(crate) fn parse(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let raw: RawEmbeddingsRequest<'_> =
        serde_json::from_slice(body).map_err(|e| ApiError::from_json_error(&e))?;
    let inputs: Prompts = serde_json::from_str(raw.input.get())
        .map_err(|e| invalid("input", format!("Invalid value for 'input': {e}")))?;
    if inputs.is_empty() {
        return Err(invalid(
            "input",
            "'input' is an empty array; send a string, or at least one input in the array.",
        ));
    }
    if inputs.len() > MAX_PROMPTS {
        return Err(invalid(
            "input",
            format!(
                "'input' holds {} inputs; at most {MAX_PROMPTS} are accepted per request.",
                inputs.len()
            ),
        ));
    }
    if let Some(i) = inputs.iter().position(|p| p.is_empty()) {
        return Err(invalid(
            "input",
            format!("'input[{i}]' is empty; every input must hold text or token ids."),
        ));
    }
    let base64 = match raw.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!(
                    "Invalid value for 'encoding_format': {other:?}; use \"float\" or \"base64\"."
                ),
            ));
        }
    };
    Ok(EmbeddingsRequest {
        model: raw.model,
        inputs,
        dimensions: raw.dimensions,
        base64,
    })
}

/// The vector size and prompt tokens of a request for `model`, or why the model refuses it
/// (`dimensions` beyond its own, an input beyond its context window).
pub(crate) fn size(
    request: &EmbeddingsRequest,
    model: &ModelProfile,
    tokenizer: &Tokenizer,
) -> Result<EmbeddingSize, ApiError> {
    let most = model.embedding_dimensions;
    let dimensions = match request.dimensions {
        None => most,
        Some(0) => return Err(invalid("dimensions", "'dimensions' must be at least 1.")),
        Some(d) if d > most => {
            return Err(invalid(
                "dimensions",
                format!(
                    "'dimensions' is {d}, but {} makes vectors of {most}; it can shorten them, not lengthen them.",
                    model.name
                ),
            ));
        }
        Some(d) => d,
    };
    let numbers = request.inputs.len() as u64 * u64::from(dimensions);
    if numbers > MAX_NUMBERS {
        return Err(invalid(
            "input",
            format!(
                "{} inputs of {dimensions} dimensions are {numbers} numbers; this mock answers at most {MAX_NUMBERS} per request.",
                request.inputs.len()
            ),
        ));
    }
    let mut prompt_tokens = 0u32;
    for (i, input) in request.inputs.iter().enumerate() {
        let tokens = match input {
            Prompt::Text(t) => tokenizer.count_remembered(t),
            Prompt::Tokens(t) => t.len() as u64,
        };
        let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
        if let Some(window) = model.context_window
            && tokens > window
        {
            let which = if request.inputs.len() > 1 {
                format!("Input {i}: ")
            } else {
                String::new()
            };
            let msg = format!(
                "{which}This model's maximum context length is {window} tokens, however you requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). Please reduce your prompt; or completion length."
            );
            return Err(ApiError::new(ApiErrorKind::ContextLengthExceeded, msg).with_param("input"));
        }
        prompt_tokens = prompt_tokens.saturating_add(tokens);
    }
    Ok(EmbeddingSize {
        prompt_tokens,
        dimensions,
    })
}

/// The answer, how long to hold it, and the guard to hold meanwhile.
pub(crate) fn serve(
    shared: &Arc<MockState>,
    model: &ModelProfile,
    request: &EmbeddingsRequest,
    size: &EmbeddingSize,
    plan: &FaultPlan,
    mut rng: SmallRng,
    in_flight: InFlight,
) -> (Duration, Response<MockBody>, Option<InFlight>) {
    let profile = &shared.profile;
    let mut ttft = profile.ttft.sample(&mut rng);
    if let Some(rate) = profile.prefill_tokens_per_second {
        ttft += Duration::from_secs_f64(f64::from(size.prompt_tokens) / rate);
    }
    let malformed = matches!(plan.action, Action::Malformed);
    shared.counters.outcome(if malformed {
        RequestOutcome::Malformed
    } else {
        RequestOutcome::Ok
    });
    shared.counters.tokens(size.prompt_tokens, 0);
    let body = if malformed {
        broken_answer()
    } else {
        answer(&shared.tokenizer, &model.name, request, size)
    };
    let mut r = Response::new(MockBody::full(body));
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    (plan.delay + ttft, r, Some(in_flight))
}

/// The unit vector of `text` under `model`, in its first `dimensions` components.
fn vector(model: &str, text: &str, dimensions: u32, out: &mut Vec<f32>) {
    // Fx has no per-process key, so a vector is the same in every run of this build.
    let mut h = rustc_hash::FxHasher::default();
    h.write(model.as_bytes());
    h.write_u8(0xff);
    h.write(text.as_bytes());
    let mut rng = SmallRng::seed_from_u64(h.finish());
    out.clear();
    // Normal components point every way alike: the vectors spread over the whole sphere.
    out.extend((0..dimensions).map(|_| -> f32 { StandardNormal.sample(&mut rng) }));
    let norm = out
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in out.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

fn answer(
    tokenizer: &Tokenizer,
    model: &str,
    request: &EmbeddingsRequest,
    size: &EmbeddingSize,
) -> Bytes {
    let n = request.inputs.len();
    let dims = size.dimensions as usize;
    let per_number = if request.base64 { 6 } else { 12 };
    let mut out = BytesMut::with_capacity(128 + n * (64 + dims * per_number));
    let mut v = Vec::with_capacity(dims);
    let mut le = Vec::new();
    out.put_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, input) in request.inputs.iter().enumerate() {
        // Token ids get the vector of the text they spell.
        match input {
            Prompt::Text(t) => vector(model, t, size.dimensions, &mut v),
            Prompt::Tokens(t) => vector(model, &tokenizer.decode(t), size.dimensions, &mut v),
        }
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(b"{\"object\":\"embedding\",\"index\":");
        put_dec(&mut out, i as u64);
        out.put_slice(b",\"embedding\":");
        if request.base64 {
            le.clear();
            le.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            out.put_u8(b'"');
            out.put_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&le)
                    .as_bytes(),
            );
            out.put_u8(b'"');
        } else {
            put_floats(&mut out, &v);
        }
        out.put_u8(b'}');
    }
    out.put_slice(b"],\"model\":");
    put_json_str(&mut out, model);
    out.put_slice(b",\"usage\":{\"prompt_tokens\":");
    put_dec(&mut out, u64::from(size.prompt_tokens));
    out.put_slice(b",\"total_tokens\":");
    put_dec(&mut out, u64::from(size.prompt_tokens));
    out.put_slice(b"}}");
    out.freeze()
}

fn put_floats(out: &mut BytesMut, v: &[f32]) {
    out.put_u8(b'[');
    let mut w = out.writer();
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            w.get_mut().put_u8(b',');
        }
        // A finite float into memory cannot fail to serialise.
        let _ = serde_json::to_writer(&mut w, x);
    }
    w.into_inner().put_u8(b']');
}

/// A 200 body that does not parse, for the `malformed` fault.
fn broken_answer() -> Bytes {
    Bytes::from_static(
        b"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    fn model(dims: u32, window: Option<u32>) -> ModelProfile {
        ModelProfile {
            name: "embed-x".into(),
            input_price_per_m: 0.02,
            output_price_per_m: 0.0,
            cached_input_price_per_m: None,
            context_window: window,
            embedding_dimensions: dims,
        }
    }

    fn tokenizer() -> Tokenizer {
        Tokenizer::new(Encoding::O200k).unwrap()
    }

    fn decode_base64(s: &str) -> Vec<f32> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn vectors_are_unit_deterministic_and_shorten_like_openais() {
        let (mut a, mut b, mut short) = (Vec::new(), Vec::new(), Vec::new());
        vector("m", "hello", 1536, &mut a);
        vector("m", "hello", 1536, &mut b);
        vector("m", "hello", 256, &mut short);
        assert_eq!(a.len(), 1536);
        assert_eq!(a, b, "same input, same vector");
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        assert!((norm(&short) - 1.0).abs() < 1e-5);
        // The short one points where the long one's first 256 components do.
        let head_norm = norm(&a[..256]);
        for (s, l) in short.iter().zip(&a) {
            assert!((f64::from(*s) - f64::from(*l) / head_norm).abs() < 1e-5);
        }
        vector("m", "hello!", 1536, &mut b);
        let cosine: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        assert!(cosine.abs() < 0.2, "other inputs point elsewhere: {cosine}");
        vector("other-model", "hello", 1536, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn answers_are_openai_json_in_floats_or_base64() {
        let t = tokenizer();
        let m = model(8, None);
        let ids = t.encode("hello world");
        for format in ["float", "base64"] {
            let body = format!(
                r#"{{"model":"embed-x","input":["hello world","hi"],"encoding_format":"{format}"}}"#
            );
            let request = parse(body.as_bytes()).unwrap();
            let sized = size(&request, &m, &t).unwrap();
            assert_eq!(sized.prompt_tokens, 3);
            let v: serde_json::Value =
                serde_json::from_slice(&answer(&t, &m.name, &request, &sized)).unwrap();
            assert_eq!(v["object"], "list");
            assert_eq!(v["model"], "embed-x");
            assert_eq!(v["usage"]["prompt_tokens"], 3);
            assert_eq!(v["usage"]["total_tokens"], 3);
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), 2);
            let vectors: Vec<Vec<f32>> = data
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    assert_eq!(d["object"], "embedding");
                    assert_eq!(d["index"], i);
                    match &d["embedding"] {
                        serde_json::Value::String(s) => decode_base64(s),
                        other => serde_json::from_value(other.clone()).unwrap(),
                    }
                })
                .collect();
            let mut expected = Vec::new();
            vector("embed-x", "hello world", 8, &mut expected);
            assert_eq!(vectors[0], expected, "{format} carries the vector exactly");
            assert!((norm(&vectors[1]) - 1.0).abs() < 1e-5);

            // The same text as token ids: the same vector.
            let body =
                format!(r#"{{"model":"embed-x","input":[{ids:?}],"encoding_format":"{format}"}}"#);
            let request = parse(body.as_bytes()).unwrap();
            let sized = size(&request, &m, &t).unwrap();
            assert_eq!(sized.prompt_tokens, 2);
            let v: serde_json::Value =
                serde_json::from_slice(&answer(&t, &m.name, &request, &sized)).unwrap();
            let first = match &v["data"][0]["embedding"] {
                serde_json::Value::String(s) => decode_base64(s),
                other => serde_json::from_value(other.clone()).unwrap(),
            };
            assert_eq!(first, expected);
        }
        assert!(serde_json::from_slice::<serde_json::Value>(&broken_answer()).is_err());
    }

    #[test]
    fn bad_requests_are_400s_naming_the_field() {
        let t = tokenizer();
        let m = model(16, Some(5));
        let refused = |body: &str| match parse(body.as_bytes()) {
            Err(e) => e,
            Ok(r) => size(&r, &m, &t).err().expect("refused"),
        };
        for (body, param) in [
            (r#"{"model":"embed-x"}"#, "input"),
            (r#"{"model":"embed-x","input":null}"#, "input"),
            (r#"{"model":"embed-x","input":[]}"#, "input"),
            (r#"{"model":"embed-x","input":["a",""]}"#, "input"),
            (r#"{"model":"embed-x","input":[[]]}"#, "input"),
            (r#"{"model":"embed-x","input":{"a":1}}"#, "input"),
            (
                r#"{"model":"embed-x","input":"a","encoding_format":"int8"}"#,
                "encoding_format",
            ),
            (
                r#"{"model":"embed-x","input":"a","dimensions":17}"#,
                "dimensions",
            ),
            (
                r#"{"model":"embed-x","input":"a","dimensions":0}"#,
                "dimensions",
            ),
            (
                r#"{"model":"embed-x","input":"one two three four five six seven"}"#,
                "input",
            ),
        ] {
            let e = refused(body);
            assert_eq!(e.status(), 400, "{body}: {e}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e}");
        }
        let e = refused(r#"{"model":"embed-x","input":"one two three four five six seven"}"#);
        assert_eq!(e.kind, ApiErrorKind::ContextLengthExceeded);
        let many = format!(
            r#"{{"model":"embed-x","input":[{}]}}"#,
            vec!["\"a\""; MAX_PROMPTS + 1].join(",")
        );
        assert_eq!(refused(&many).param.as_deref(), Some("input"));
        let ok = parse(br#"{"model":"embed-x","input":"a","dimensions":16}"#).unwrap();
        assert_eq!(size(&ok, &m, &t).unwrap().dimensions, 16);
    }
}
