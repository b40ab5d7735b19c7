//! What a completion says when it is more than words: a tool call when the request offers
//! tools, JSON when it asks for `response_format` `json_object` or `json_schema`. Decided once
//! per request; a plain request (no tools, no format) never gets here past two checks.

use rand::RngExt;
use rand::rngs::SmallRng;
use serde_json::Value;

use crate::openai::{ChatRequest, ResponseFormat, Tool};

use super::schema;

/// Text cut into pieces of about one token (four bytes, at character boundaries).
pub(crate) struct Pieces {
    text: String,
    ends: Vec<usize>,
}

/// Bytes per piece: OpenAI's four characters per token for English.
const PIECE_BYTES: usize = 4;

impl Pieces {
    pub fn new(text: String) -> Self {
        let mut ends = Vec::with_capacity(text.len() / PIECE_BYTES + 1);
        let mut start = 0;
        for (i, _) in text.char_indices() {
            if i >= start + PIECE_BYTES {
                ends.push(i);
                start = i;
            }
        }
        if start < text.len() || text.is_empty() {
            ends.push(text.len());
        }
        Self { text, ends }
    }

    pub fn len(&self) -> u32 {
        u32::try_from(self.ends.len()).unwrap_or(u32::MAX)
    }

    pub fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let end = self.ends.get(i).copied().unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or("")
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

pub(crate) enum Answer {
    /// JSON content for `response_format`.
    Json(Pieces),
    /// One function call; its arguments are a JSON object.
    ToolCall {
        id: String,
        name: String,
        arguments: Pieces,
    },
}

impl Answer {
    /// Completion tokens the answer takes: a tool call's first delta (id and name) is one.
    pub fn units(&self) -> u32 {
        match self {
            Answer::Json(p) => p.len(),
            Answer::ToolCall { arguments, .. } => arguments.len().saturating_add(1),
        }
    }

    pub fn finish_reason(&self) -> &'static str {
        match self {
            Answer::Json(_) => "stop",
            Answer::ToolCall { .. } => "tool_calls",
        }
    }
}

/// The answer a request gets beyond words, if any; `words` is the completion length drawn.
pub(crate) fn choose(
    request: &ChatRequest,
    tool_call_rate: f64,
    rng: &mut SmallRng,
    words: u32,
) -> Option<Box<Answer>> {
    if let Some(tools) = request.tools.as_deref().filter(|t| !t.is_empty())
        && let Some(tool) = pick_tool(tools, request.tool_choice.as_ref(), tool_call_rate, rng)
    {
        // Raw text that parsed as JSON once parses again; no schema means any object.
        let params = tool
            .function
            .parameters
            .as_ref()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        let args = schema::instance(&params, rng, 3);
        return Some(Box::new(Answer::ToolCall {
            id: format!("call_{:016x}", rng.random::<u64>()),
            name: tool.function.name.clone(),
            arguments: Pieces::new(args.to_string()),
        }));
    }
    let value = match request.response_format.as_ref()? {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => schema::free_object(rng, words),
        ResponseFormat::JsonSchema { json_schema } => match &json_schema.schema {
            Some(s) => schema::instance(s, rng, words),
            None => schema::free_object(rng, words),
        },
    };
    Some(Box::new(Answer::Json(Pieces::new(value.to_string()))))
}

/// `none` never calls; `required` or a named function always does; `auto` (or nothing)
/// calls at the profile's rate. A named function the request does not offer is not called.
fn pick_tool<'a>(
    tools: &'a [Tool],
    choice: Option<&Value>,
    rate: f64,
    rng: &mut SmallRng,
) -> Option<&'a Tool> {
    match choice {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::String(s)) if s == "required" => Some(&tools[rng.random_range(0..tools.len())]),
        Some(Value::Object(o)) => {
            let name = o.get("function")?.get("name")?.as_str()?;
            tools.iter().find(|t| t.function.name == name)
        }
        _ => (rng.random::<f64>() < rate).then(|| &tools[rng.random_range(0..tools.len())]),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn pieces_cover_the_text_at_char_boundaries() {
        let p = Pieces::new("{\"a\":\"héllo wörld\"}".to_string());
        let joined: String = (0..p.len()).map(|i| p.get(i)).collect();
        assert_eq!(joined, p.text());
        assert!(p.len() >= 4);
        assert_eq!(Pieces::new(String::new()).len(), 1);
    }

    fn request(extra: &str) -> ChatRequest {
        serde_json::from_str(&format!(
            r#"{{"model":"m","messages":[],"tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}},"required":["city"]}}}}}}]{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn tool_choice_decides_before_the_rate() {
        let mut rng = SmallRng::seed_from_u64(1);
        let none = request(r#","tool_choice":"none""#);
        assert!(choose(&none, 1.0, &mut rng, 5).is_none());
        let required = request(r#","tool_choice":"required""#);
        let a = choose(&required, 0.0, &mut rng, 5).unwrap();
        let Answer::ToolCall {
            name, arguments, ..
        } = *a
        else {
            panic!("a tool call was required")
        };
        assert_eq!(name, "get_weather");
        let args: Value = serde_json::from_str(arguments.text()).unwrap();
        assert!(args["city"].is_string(), "{args}");
        let auto = request("");
        let calls = (0..1000)
            .filter(|_| choose(&auto, 0.3, &mut rng, 5).is_some())
            .count();
        assert!((200..400).contains(&calls), "{calls} of 1000 at rate 0.3");
    }
}
