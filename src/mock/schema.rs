//! JSON answers: an instance of a JSON Schema for the common types (object with properties,
//! string, number, integer, boolean, array, enum, const, null), made of seeded words and
//! numbers, for `response_format` and tool-call arguments.
//!
//! Keywords beyond those (patterns, formats, `$ref`) are not followed: a property whose type
//! cannot be told gets a string. Every listed property is filled, required or not, so
//! `required` always holds; `anyOf`/`oneOf` take their first branch.

use rand::RngExt;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};

use super::words::word;

/// Nesting deeper than this is answered with `null` rather than followed.
const MAX_DEPTH: usize = 16;

/// An instance of `schema`; `words` is the length of free text (a string with no schema).
pub(crate) fn instance(schema: &Value, rng: &mut SmallRng, words: u32) -> Value {
    build(schema, rng, words, 0)
}

/// The `json_object` answer: one object whose `answer` holds `words` words.
pub(crate) fn free_object(rng: &mut SmallRng, words: u32) -> Value {
    let mut m = Map::new();
    m.insert("answer".into(), Value::String(text(rng, words)));
    Value::Object(m)
}

fn text(rng: &mut SmallRng, words: u32) -> String {
    let mut s = String::new();
    for _ in 0..words.max(1) {
        s.push_str(word(rng));
    }
    s.trim_start().to_string()
}

fn type_of(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => t,
        // ["string", "null"]: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.contains_key("properties") => "object",
        _ if schema.contains_key("items") => "array",
        _ => "string",
    }
}

fn build(schema: &Value, rng: &mut SmallRng, words: u32, depth: usize) -> Value {
    let Value::Object(s) = schema else {
        // `true` (anything) or a malformed schema: a string is as good as anything.
        return Value::String(text(rng, 2));
    };
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.is_empty()
    {
        return options[rng.random_range(0..options.len())].clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return build(first, rng, words, depth + 1);
        }
    }
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    match type_of(s) {
        "object" => {
            let mut out = Map::new();
            if let Some(Value::Object(props)) = s.get("properties") {
                for (name, sub) in props {
                    out.insert(name.clone(), build(sub, rng, 3, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let lo = bound("minItems").unwrap_or(1.0).max(0.0) as usize;
            let hi = bound("maxItems").map_or(lo.max(3), |h| h.max(0.0) as usize);
            let n = if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                lo
            };
            let items = s.get("items").cloned().unwrap_or(Value::Bool(true));
            Value::Array((0..n).map(|_| build(&items, rng, 2, depth + 1)).collect())
        }
        "integer" => {
            let lo = bound("minimum").map_or(0, |v| v.ceil() as i64);
            let hi = bound("maximum").map_or(lo.saturating_add(100), |v| v.floor() as i64);
            let n = if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                lo
            };
            Value::from(n)
        }
        "number" => {
            let lo = bound("minimum").unwrap_or(0.0);
            let hi = bound("maximum").unwrap_or(lo + 100.0);
            let x = if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            };
            // Two decimals: numbers as a model writes them.
            Value::from((x * 100.0).floor() / 100.0)
        }
        "boolean" => Value::Bool(rng.random_bool(0.5)),
        "null" => Value::Null,
        _ => {
            let min = bound("minLength").unwrap_or(0.0) as usize;
            let mut t = text(rng, words);
            while t.chars().count() < min {
                t.push_str(word(rng));
            }
            if let Some(max) = bound("maxLength") {
                t = t.chars().take(max as usize).collect();
            }
            Value::String(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn an_instance_has_every_property_of_the_right_type() {
        let schema: Value = serde_json::from_str(
            r#"{"type":"object","required":["city","days"],"properties":{
                "city":{"type":"string","minLength":3},
                "days":{"type":"integer","minimum":1,"maximum":7},
                "temp":{"type":"number","minimum":-10,"maximum":40},
                "metric":{"type":"boolean"},
                "unit":{"enum":["c","f"]},
                "tags":{"type":"array","items":{"type":"string"},"minItems":2,"maxItems":2},
                "note":{"type":["string","null"]},
                "where":{"type":"object","properties":{"lat":{"type":"number"}}}}}"#,
        )
        .unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..50 {
            let v = instance(&schema, &mut rng, 5);
            assert!(v["city"].as_str().unwrap().len() >= 3, "{v}");
            assert!((1..=7).contains(&v["days"].as_i64().unwrap()), "{v}");
            let t = v["temp"].as_f64().unwrap();
            assert!((-10.0..=40.0).contains(&t), "{v}");
            assert!(v["metric"].is_boolean());
            assert!(["c", "f"].contains(&v["unit"].as_str().unwrap()));
            assert_eq!(v["tags"].as_array().unwrap().len(), 2);
            assert!(v["note"].is_string());
            assert!(v["where"]["lat"].is_number());
        }
        assert!(free_object(&mut rng, 4)["answer"].is_string());
    }
}
