//! Mock providers under real traffic: prefill time grows with the prompt, a full batch makes
//! requests queue and decoding slow down, a repeated prefix is served from the cache, tool
//! calls and JSON answers have OpenAI's exact shape (read by async-openai and the OpenAI
//! Python SDK), and a reasoning model thinks before it answers.

use std::time::{Duration, Instant};

use gauntlet::mock::{MockHandle, Profile};
use gauntlet::openai::{ChatChunk, ChatCompletion, Message};
use gauntlet::tokenizer::{Encoding, Tokenizer};
use serde_json::{Value, json};

use crate::support::{RawReply, post_chat, profile, start_mock, start_mock_named};

/// One model `m` with a cached-input price, answering at once unless `extra` says otherwise.
fn provider(extra: &str) -> Profile {
    profile(&format!(
        "name = \"real\"\nseed = 9\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
         output_price_per_m = 2\ncached_input_price_per_m = 0.25\n{extra}"
    ))
}

fn body(messages: &[(&str, &str)], max_tokens: Option<u32>, stream: bool, extra: Value) -> String {
    let mut b = json!({
        "model": "m",
        "messages": messages.iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>(),
        "stream": stream,
        "stream_options": {"include_usage": true},
    });
    if let Some(n) = max_tokens {
        b["max_tokens"] = json!(n);
    }
    if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
        b.extend(e);
    }
    b.to_string()
}

async fn timed(m: &MockHandle, body: &str) -> (Duration, RawReply) {
    let t0 = Instant::now();
    let r = post_chat(m.addr(), body).await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    (t0.elapsed(), r)
}

fn chunks(reply: &RawReply) -> Vec<ChatChunk> {
    let events = reply.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
        .collect()
}

#[tokio::test]
async fn ttft_grows_with_prompt_length_as_the_prefill_rate_says() {
    let m = start_mock(provider(
        "[latency]\nttft = \"20ms\"\nprefill_tokens_per_second = 20000\n",
    ))
    .await;
    let (short, r) = timed(
        &m,
        &body(&[("user", "What time is it?")], Some(1), false, json!({})),
    )
    .await;
    let short_tokens = r.json()["usage"]["prompt_tokens"].as_f64().unwrap();
    let document = gauntlet::workload::synthetic_text(30_000, 1);
    let (long, r) = timed(&m, &body(&[("user", &document)], Some(1), false, json!({}))).await;
    let long_tokens = r.json()["usage"]["prompt_tokens"].as_f64().unwrap();
    assert_eq!(
        long_tokens, 30_004.0,
        "30 000 tokens of text and one message"
    );
    let promised = Duration::from_secs_f64((long_tokens - short_tokens) / 20_000.0);
    assert!(
        short < Duration::from_secs(1),
        "a short prompt starts at once: {short:?}"
    );
    assert!(
        long >= Duration::from_millis(1500) && long - short + Duration::from_millis(50) >= promised,
        "30 000 tokens at 20 000/s take 1.5 s more: short {short:?}, long {long:?}"
    );
    assert!(
        long - short < promised + Duration::from_secs(3),
        "{short:?} vs {long:?}"
    );
}

#[tokio::test]
async fn sixteen_requests_on_four_slots_wait_their_turn() {
    let m = start_mock(provider(
        "[latency]\nttft = \"200ms\"\n[capacity]\nmax_concurrent = 4\n",
    ))
    .await;
    let addr = m.addr();
    let b = body(&[("user", "hi")], Some(1), false, json!({}));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                let r = post_chat(addr, &b).await;
                assert_eq!(r.status(), Some(200), "{}", r.body());
                t0.elapsed()
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    done.sort();
    // Each slot serves one 200 ms request at a time: at most 4 can be done per 200 ms wave.
    for (wave, by) in [(1, 390), (2, 590), (3, 790)] {
        let finished = done
            .iter()
            .filter(|d| **d < Duration::from_millis(by))
            .count();
        assert!(
            finished <= 4 * wave,
            "{finished} done before {by} ms: {done:?}"
        );
    }
    assert!(
        done[15] >= Duration::from_millis(800),
        "the last waited 3 turns: {done:?}"
    );
    assert!(done[0] >= Duration::from_millis(200), "{done:?}");
    assert_eq!(m.stats().requests_total, 16);
}

#[tokio::test]
async fn decoding_slows_down_with_the_sequences_running() {
    let m = start_mock(provider(
        "[latency]\ntokens_per_second = 200\n[capacity]\ndecode_slowdown = 1.0\n",
    ))
    .await;
    let b = body(&[("user", "hi")], Some(40), false, json!({}));
    let (alone, _) = timed(&m, &b).await;
    assert!(
        alone >= Duration::from_millis(200),
        "40 tokens at 200/s: {alone:?}"
    );
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (addr, b) = (m.addr(), b.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                assert_eq!(post_chat(addr, &b).await.status(), Some(200));
                t0.elapsed()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    // The last of 4 to start shares the batch with 3 others: 200 / (1 + 3) = 50 tokens/s.
    assert!(
        slowest >= Duration::from_millis(500),
        "4 at once decode slower than one ({alone:?}): slowest {slowest:?}"
    );
}

#[tokio::test]
async fn a_repeated_prefix_is_served_from_the_cache_reported_and_counted() {
    let m = start_mock(provider(
        "[latency]\nprefill_tokens_per_second = 10000\n[capacity]\nprefix_cache_tokens = 100000\n",
    ))
    .await;
    let system = gauntlet::workload::synthetic_text(10_000, 7);
    let first = [("system", system.as_str()), ("user", "My order is late.")];
    let (t1, r1) = timed(&m, &body(&first, Some(2), false, json!({}))).await;
    let u1 = r1.json()["usage"].clone();
    assert_eq!(u1["prompt_tokens_details"]["cached_tokens"], 0, "{u1}");
    assert!(
        t1 >= Duration::from_secs(1),
        "10 000 tokens at 10 000/s: {t1:?}"
    );

    let second = [
        first[0],
        first[1],
        ("assistant", "Sorry to hear that; which order?"),
        ("user", "Order 42."),
    ];
    let (t2, r2) = timed(&m, &body(&second, Some(2), false, json!({}))).await;
    let u2 = r2.json()["usage"].clone();
    let seen: Vec<Message> = first.iter().map(|(r, c)| Message::new(*r, *c)).collect();
    let cached = Tokenizer::new(Encoding::O200k)
        .unwrap()
        .count_messages(&seen);
    assert_eq!(u2["prompt_tokens_details"]["cached_tokens"], cached, "{u2}");
    let prompt = u2["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > cached, "{u2}");
    assert!(
        t2 < Duration::from_secs(1),
        "only the new turns are read: {t2:?}"
    );
    // Priced as the profile says: $1/M for input, $0.25/M for cached input.
    let cost = |p: u64, c: u64| (p - c) as f64 * 1.0 + c as f64 * 0.25;
    assert!(cost(prompt, cached) < 0.5 * cost(prompt, 0));

    // The same conversation again, streamed: now every message is cached.
    let (_, r3) = timed(&m, &body(&second, Some(2), true, json!({}))).await;
    let usage = chunks(&r3).last().and_then(|c| c.usage).unwrap();
    assert_eq!(usage.cached_tokens(), usage.prompt_tokens);

    let s = m.stats();
    assert_eq!(s.cached_tokens, cached + prompt, "{s:?}");
    assert_eq!(
        s.prompt_tokens,
        u1["prompt_tokens"].as_u64().unwrap() + 2 * prompt
    );

    // A reset (between the targets of a bake-off) empties the cache: nothing is cached again.
    let control = gauntlet::mock::ControlClient::new(&m.url(), None).unwrap();
    control.reset().await.unwrap();
    let (_, r4) = timed(&m, &body(&second, Some(2), false, json!({}))).await;
    assert_eq!(
        r4.json()["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );
    assert_eq!(m.stats().cached_tokens, 0);
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    "unit": {"enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city", "days", "unit"]
            }
        }
    })
}

fn assert_weather_arguments(args: &str) {
    let v: Value = serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {args}"));
    assert!(v["city"].is_string(), "{v}");
    assert!((1..=7).contains(&v["days"].as_i64().unwrap()), "{v}");
    assert!(
        ["celsius", "fahrenheit"].contains(&v["unit"].as_str().unwrap()),
        "{v}"
    );
}

#[tokio::test]
async fn tool_call_streams_parse_with_async_openai() {
    use async_openai::Client;
    use async_openai::config::OpenAIConfig;
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, ChatCompletionTools, CreateChatCompletionRequestArgs,
        FinishReason,
    };
    use futures_util::StreamExt;

    let m = start_mock(provider(
        "[latency]\nttft = \"5ms\"\ntokens_per_second = 2000\n[completion]\ntool_call_rate = 1.0\n",
    ))
    .await;
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{}/v1", m.url()))
            .with_api_key("sk-test"),
    );
    let tools: Vec<ChatCompletionTools> = serde_json::from_value(json!([weather_tool()])).unwrap();
    let message = ChatCompletionRequestUserMessageArgs::default()
        .content("Weather in Lisbon?")
        .build()
        .unwrap();
    let request = CreateChatCompletionRequestArgs::default()
        .model("m")
        .messages([message.into()])
        .tools(tools)
        .build()
        .unwrap();

    let mut stream = client.chat().create_stream(request.clone()).await.unwrap();
    let (mut id, mut name, mut arguments) = (None, None, String::new());
    let (mut finish, mut pieces) = (None, 0);
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            for call in c.delta.tool_calls.unwrap_or_default() {
                assert_eq!(call.index, 0);
                pieces += 1;
                id = id.or(call.id);
                if let Some(f) = call.function {
                    name = name.or(f.name);
                    arguments.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
            finish = finish.or(c.finish_reason);
        }
    }
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert!(id.is_some_and(|i| i.starts_with("call_")));
    assert!(pieces > 2, "arguments come in pieces: {pieces}");
    assert_weather_arguments(&arguments);

    let answer = client.chat().create(request).await.unwrap();
    let choice = &answer.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let calls = serde_json::to_value(&choice.message.tool_calls).unwrap();
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{calls}");
    assert_weather_arguments(calls[0]["function"]["arguments"].as_str().unwrap());
}

/// Needs `python3` with the `openai` package, like the retry test in mock.rs; never skips.
#[tokio::test]
async fn tool_call_and_reasoning_streams_parse_with_the_openai_python_sdk() {
    let m = start_mock_named(
        provider(
            "[latency]\ntokens_per_second = 2000\n[completion]\ntool_call_rate = 1.0\n\
             reasoning_tokens = 6\n",
        ),
        "py",
        None,
    )
    .await;
    let report = crate::support::python_sdk("sdk_tools.py", &format!("{}/v1", m.url())).await;

    let stream = &report["stream"];
    assert_eq!(stream["finish"], "tool_calls", "{report}");
    let order: Vec<&str> = stream["order"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let first_call = order.iter().position(|k| *k == "tool_call").unwrap();
    assert_eq!(&order[..first_call], ["reasoning"; 6], "{report}");
    assert!(
        order[first_call..].iter().all(|k| *k == "tool_call"),
        "{report}"
    );
    let usage = &stream["usage"];
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"], 6,
        "{report}"
    );
    assert_eq!(usage["completion_tokens"], order.len(), "{report}");
    for part in ["stream", "accumulated", "plain"] {
        let calls = report[part]["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{part}: {report}");
        assert_eq!(calls[0]["name"], "get_weather");
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
        assert_weather_arguments(calls[0]["arguments"].as_str().unwrap());
        assert_eq!(report[part]["finish"], "tool_calls", "{part}: {report}");
    }
    assert!(report["plain"]["content"].is_null(), "{report}");
    assert_eq!(
        m.stats().reasoning_tokens,
        18,
        "6 for each of the 3 answers"
    );
}

#[tokio::test]
async fn reasoning_deltas_come_before_the_content_and_are_billed_as_output() {
    let m = start_mock(provider("[completion]\nreasoning_tokens = 8\n")).await;
    let (_, r) = timed(&m, &body(&[("user", "Why?")], Some(5), true, json!({}))).await;
    let chunks = chunks(&r);
    let kinds: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.choices.first())
        .filter_map(|c| {
            if c.delta.reasoning_content.is_some() {
                Some("reasoning")
            } else {
                c.delta
                    .content
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .map(|_| "content")
            }
        })
        .collect();
    let mut expected = vec!["reasoning"; 8];
    expected.extend(["content"; 5]);
    assert_eq!(kinds, expected);
    let usage = chunks.last().and_then(|c| c.usage).unwrap();
    assert_eq!((usage.completion_tokens, usage.reasoning_tokens()), (13, 8));

    let (_, r) = timed(&m, &body(&[("user", "Why?")], Some(5), false, json!({}))).await;
    let c: ChatCompletion = serde_json::from_str(&r.body()).unwrap();
    let message = &c.choices[0].message;
    assert_eq!(
        message
            .reasoning_content
            .as_deref()
            .unwrap()
            .split_whitespace()
            .count(),
        8
    );
    assert_eq!(
        message
            .content
            .as_deref()
            .unwrap()
            .split_whitespace()
            .count(),
        5
    );
    assert_eq!(c.usage.unwrap().reasoning_tokens(), 8);
    let s = m.stats();
    assert_eq!((s.reasoning_tokens, s.completion_tokens), (16, 26));
}

#[tokio::test]
async fn json_schema_answers_are_instances_of_the_schema() {
    let m = start_mock(provider("[latency]\ntokens_per_second = 5000\n")).await;
    let format = json!({"response_format": {"type": "json_schema", "json_schema": {
    "name": "ticket", "strict": true, "schema": {
        "type": "object", "additionalProperties": false,
        "required": ["title", "priority", "tags", "estimate", "done"],
        "properties": {
            "title": {"type": "string"},
            "priority": {"type": "string", "enum": ["low", "high"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "estimate": {"type": "number"},
            "done": {"type": "boolean"}
        }}}}});
    let check = |text: &str| {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v.as_object().unwrap().len(), 5, "{v}");
        assert!(v["title"].is_string() && v["estimate"].is_number() && v["done"].is_boolean());
        assert!(
            ["low", "high"].contains(&v["priority"].as_str().unwrap()),
            "{v}"
        );
        assert!(
            v["tags"].as_array().unwrap().iter().all(Value::is_string),
            "{v}"
        );
    };
    let b = body(&[("user", "File a ticket")], None, false, format.clone());
    let (_, r) = timed(&m, &b).await;
    let c: ChatCompletion = serde_json::from_str(&r.body()).unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    check(c.choices[0].message.content.as_deref().unwrap());

    let b = body(&[("user", "File a ticket")], None, true, format);
    let (_, r) = timed(&m, &b).await;
    let chunks = chunks(&r);
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    check(&text);
    let pieces = chunks
        .iter()
        .filter(|c| {
            c.choices
                .first()
                .is_some_and(|ch| ch.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
        })
        .count();
    assert_eq!(
        chunks
            .last()
            .and_then(|c| c.usage)
            .unwrap()
            .completion_tokens as usize,
        pieces
    );

    let b = body(
        &[("user", "Any JSON")],
        Some(12),
        false,
        json!({"response_format": {"type": "json_object"}}),
    );
    let (_, r) = timed(&m, &b).await;
    let c: ChatCompletion = serde_json::from_str(&r.body()).unwrap();
    let v: Value = serde_json::from_str(c.choices[0].message.content.as_deref().unwrap()).unwrap();
    assert_eq!(
        v["answer"].as_str().unwrap().split_whitespace().count(),
        12,
        "{v}"
    );
}

#[test]
fn shipped_profiles_load_and_the_thinking_one_uses_every_feature() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/mock-upstreams");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_profile = path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "fleet.toml");
        if is_profile {
            Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(loaded >= 5, "{loaded} profiles");
    let p = Profile::load(&std::path::Path::new(dir).join("deepseek-r1-thinking.toml")).unwrap();
    assert!(p.reasoning_tokens.is_some() && p.prefill_tokens_per_second.is_some());
    assert!(p.capacity.max_concurrent.is_some() && p.capacity.prefix_cache_tokens.is_some());
    assert!(p.capacity.decode_slowdown > 0.0 && p.tool_call_rate > 0.0);
    assert!(p.models[0].cached_input_price_per_m < Some(p.models[0].input_price_per_m));
}
