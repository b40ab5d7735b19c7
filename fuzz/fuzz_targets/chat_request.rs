//! Request parsing as the mock and the gateway do it: a body either parses or becomes an
//! OpenAI-shaped 4xx error whose JSON is itself valid.
#![no_main]

use gauntlet::openai::{ApiError, ChatRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<ChatRequest>(data) {
        Ok(req) => {
            let _ = serde_json::to_vec(&req);
        }
        Err(e) => {
            let err = ApiError::from_json_error(&e);
            assert!((400..500).contains(&err.status()), "status {}", err.status());
            let body: serde_json::Value =
                serde_json::from_slice(&err.to_json()).expect("error body is JSON");
            assert!(body["error"]["message"].is_string());
        }
    }
});
