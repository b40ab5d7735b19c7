//! Reading a recorded trace (JSONL, one request a line) into the lines a replay sends: every
//! line validated with file:line errors, times in order, classes found by name or by model.
//!
//! The file is streamed line by line and kept as 40-byte `TraceLine`s, so memory is bounded by
//! `MAX_LINES`, not by the file's size.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::model::TraceLine;
use crate::config::{ConfigError, Location, MAX_DURATION, did_you_mean};

/// 80 MB of lines at most; a longer trace is better cut into several runs.
pub const MAX_LINES: usize = 2_000_000;
/// A line longer than this is not a trace record (a prompt pasted in, a binary file).
const MAX_LINE_BYTES: u64 = 64 * 1024;
const MAX_PROMPT_TOKENS: u64 = 10_000_000;
const MAX_OUTPUT_TOKENS: u64 = 1_000_000;
/// Past this many bad lines the rest are not reported: the file is likely the wrong one.
const MAX_ERRORS: usize = 20;
const FIELDS: &[&str] = &[
    "t",
    "timestamp",
    "class",
    "model",
    "prompt_tokens",
    "output_tokens",
];

/// A request class as a trace line may name it: by its name or by the model it asks for.
#[derive(Debug, Clone, Copy)]
pub struct ClassRef<'a> {
    pub name: &'a str,
    pub model: &'a str,
}

#[derive(Debug)]
pub enum TraceReadError {
    /// The file could not be opened.
    Open(std::io::Error),
    /// Lines that are not trace records, each located in the trace file.
    Lines(Vec<ConfigError>),
}

/// Reads the trace at `path`: times relative to its first line, divided by `speed`.
pub fn read(
    path: &Path,
    speed: f64,
    classes: &[ClassRef<'_>],
) -> Result<Vec<TraceLine>, TraceReadError> {
    let file = std::fs::File::open(path).map_err(TraceReadError::Open)?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut first: Option<f64> = None;
    // The latest timestamp so far and the line it is on.
    let mut last: Option<(f64, usize)> = None;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        number += 1;
        buf.clear();
        let at = |col: usize| Location {
            file: path.to_path_buf(),
            line: number,
            col,
        };
        let err = |col: usize, key: &str, msg: String| ConfigError {
            location: Some(at(col)),
            key: key.to_string(),
            message: msg,
        };
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                errors.push(err(1, "", format!("cannot read the trace: {e}")));
                break;
            }
        }
        if buf.len() as u64 > MAX_LINE_BYTES {
            errors.push(err(
                1,
                "",
                format!("line is longer than {MAX_LINE_BYTES} bytes; a trace line is one small JSON object"),
            ));
            break;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            errors.push(err(1, "", "is not UTF-8 text".into()));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        if lines.len() >= MAX_LINES {
            errors.push(err(
                1,
                "",
                format!("a trace holds at most {MAX_LINES} lines; cut it into several runs"),
            ));
            break;
        }
        match parse_line(text.trim_end(), classes) {
            Ok(rec) => {
                if let Some((prev, prev_line)) = last
                    && rec.time < prev
                {
                    errors.push(err(
                        1,
                        rec.time_key,
                        format!(
                            "{} is before line {prev_line}'s {prev}; a trace is in time order",
                            rec.time
                        ),
                    ));
                } else {
                    last = Some((rec.time, number));
                    let origin = *first.get_or_insert(rec.time);
                    let secs = (rec.time - origin) / speed;
                    if secs > MAX_DURATION.as_secs_f64() {
                        errors.push(err(
                            1,
                            rec.time_key,
                            format!(
                                "is {secs:.0} s after the first line at speed {speed}; a run is limited to {}",
                                humantime::format_duration(MAX_DURATION)
                            ),
                        ));
                        break;
                    }
                    lines.push(TraceLine {
                        at: Duration::from_secs_f64(secs.max(0.0)),
                        class: rec.class,
                        prompt_tokens: rec.prompt_tokens,
                        max_tokens: rec.max_tokens,
                    });
                }
            }
            Err((col, key, msg)) => errors.push(err(col, key, msg)),
        }
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    if lines.is_empty() && errors.is_empty() {
        errors.push(ConfigError::file(
            path,
            "has no lines; write one JSON object a line: {\"t\": 0.5, \"class\": \"chat\", \"prompt_tokens\": 200, \"output_tokens\": 50}",
        ));
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(TraceReadError::Lines(errors))
    }
}

/// One line's values, before its time is placed on the replay's clock.
struct Record {
    time: f64,
    /// Which of `t` / `timestamp` the line used, for messages.
    time_key: &'static str,
    class: u32,
    prompt_tokens: Option<u32>,
    max_tokens: Option<u32>,
}

/// (column, field, message) of what is wrong with a line.
type LineError = (usize, &'static str, String);

fn parse_line(text: &str, classes: &[ClassRef<'_>]) -> Result<Record, LineError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        // serde_json appends "at line 1 column N"; the column is reported as the location.
        let msg = full.split(" at line ").next().unwrap_or(&full).to_string();
        (e.column().max(1), "", format!("is not JSON: {msg}"))
    })?;
    let Value::Object(obj) = value else {
        return Err((
            1,
            "",
            "is not a JSON object; write {\"t\": 0.5, \"class\": \"chat\"}".into(),
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let hint = did_you_mean(unknown, FIELDS.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err((
            1,
            "",
            format!(
                "unknown field `{unknown}`{hint}; a trace line has t or timestamp, class or model, prompt_tokens, output_tokens"
            ),
        ));
    }
    let (time_key, time) = match (obj.get("t"), obj.get("timestamp")) {
        (Some(_), Some(_)) => {
            return Err((1, "timestamp", "give `t` or `timestamp`, not both".into()));
        }
        (Some(v), None) => ("t", v),
        (None, Some(v)) => ("timestamp", v),
        (None, None) => {
            return Err((
                1,
                "t",
                "missing; give the send time in seconds as `t` or `timestamp`".into(),
            ));
        }
    };
    let time = match time.as_f64() {
        Some(t) if t.is_finite() && t >= 0.0 => t,
        _ => {
            return Err((
                1,
                time_key,
                format!("{time} is not a time; give seconds as a number >= 0"),
            ));
        }
    };
    let class = class_of(&obj, classes)?;
    let prompt_tokens = tokens(&obj, "prompt_tokens", 0, MAX_PROMPT_TOKENS)?;
    let max_tokens = tokens(&obj, "output_tokens", 1, MAX_OUTPUT_TOKENS)?;
    Ok(Record {
        time,
        time_key,
        class,
        prompt_tokens,
        max_tokens,
    })
}

fn class_of(obj: &Map<String, Value>, classes: &[ClassRef<'_>]) -> Result<u32, LineError> {
    let (key, wanted) = match (obj.get("class"), obj.get("model")) {
        (Some(_), Some(_)) => {
            return Err((1, "model", "give `class` or `model`, not both".into()));
        }
        (Some(v), None) => ("class", v),
        (None, Some(v)) => ("model", v),
        (None, None) => {
            return Err((
                1,
                "class",
                "missing; name the request class (`class`) or the model (`model`) it is sent as"
                    .into(),
            ));
        }
    };
    let Some(wanted) = wanted.as_str() else {
        return Err((1, key, format!("{wanted} is not a string")));
    };
    // By model, the first class asking for it: a trace records models, a scenario may have
    // several classes of one model that differ in what else they send.
    let found = if key == "class" {
        classes.iter().position(|c| c.name == wanted)
    } else {
        classes.iter().position(|c| c.model == wanted)
    };
    let Some(i) = found else {
        let names: Vec<&str> = classes
            .iter()
            .map(|c| if key == "class" { c.name } else { c.model })
            .collect();
        let hint = did_you_mean(wanted, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let what = if key == "class" {
            "no [[requests]] class is named"
        } else {
            "no [[requests]] class asks for model"
        };
        return Err((
            1,
            key,
            format!("{what} {wanted:?}{hint}; known: {}", names.join(", ")),
        ));
    };
    u32::try_from(i).map_err(|_| (1, key, "too many classes".to_string()))
}

fn tokens(
    obj: &Map<String, Value>,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u32>, LineError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    match v.as_u64().filter(|n| (min..=max).contains(n)) {
        Some(n) => Ok(u32::try_from(n).ok()),
        None => Err((
            1,
            key,
            format!("{v} is not allowed; use a whole number of tokens from {min} to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: &[ClassRef<'static>] = &[
        ClassRef {
            name: "chat",
            model: "m",
        },
        ClassRef {
            name: "chat-2",
            model: "m",
        },
        ClassRef {
            name: "docs",
            model: "big",
        },
    ];

    fn read_text(text: &str, speed: f64) -> Result<Vec<TraceLine>, Vec<ConfigError>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, text).unwrap();
        read(&path, speed, CLASSES).map_err(|e| match e {
            TraceReadError::Open(e) => panic!("{e}"),
            TraceReadError::Lines(errors) => errors,
        })
    }

    fn first_error(text: &str) -> String {
        let errors = read_text(text, 1.0).unwrap_err();
        let e = &errors[0];
        let at = e.location.as_ref().unwrap();
        format!("{}:{} {} {}", at.line, at.col, e.key, e.message)
    }

    #[test]
    fn a_line_is_40_bytes() {
        assert!(std::mem::size_of::<TraceLine>() <= 40);
    }

    #[test]
    fn times_start_at_the_first_line_and_divide_by_the_speed() {
        let lines = read_text(
            "{\"t\": 100, \"model\": \"m\"}\n\n{\"t\": 101, \"model\": \"big\", \"output_tokens\": 3}\n{\"t\": 101, \"class\": \"chat-2\", \"prompt_tokens\": 0}\n",
            2.0,
        )
        .unwrap();
        let at: Vec<_> = lines.iter().map(|l| l.at).collect();
        assert_eq!(at, [0, 500, 500].map(Duration::from_millis));
        // A model goes to the first class asking for it; a name to that class.
        let classes: Vec<_> = lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, [0, 2, 1]);
        assert_eq!(lines[1].max_tokens, Some(3));
        assert_eq!(lines[2].prompt_tokens, Some(0));
    }

    #[test]
    fn bad_lines_are_named_with_their_field() {
        assert!(
            first_error("{\"model\": \"m\"}").starts_with("1:1 t missing"),
            "{}",
            first_error("{\"model\": \"m\"}")
        );
        let both = first_error("{\"t\": 1, \"timestamp\": 1, \"model\": \"m\"}");
        assert!(
            both.starts_with("1:1 timestamp give `t` or `timestamp`"),
            "{both}"
        );
        let both = first_error("{\"t\": 1, \"class\": \"chat\", \"model\": \"m\"}");
        assert!(
            both.starts_with("1:1 model give `class` or `model`"),
            "{both}"
        );
        let zero = first_error("{\"t\": 1, \"class\": \"chat\", \"output_tokens\": 0}");
        assert!(
            zero.starts_with("1:1 output_tokens 0 is not allowed"),
            "{zero}"
        );
        let neg = first_error("{\"t\": -1, \"class\": \"chat\"}");
        assert!(neg.starts_with("1:1 t -1 is not a time"), "{neg}");
        let array = first_error("{\"t\": 0, \"class\": \"chat\"}\n[1, 2]\n");
        assert!(array.starts_with("2:1  is not a JSON object"), "{array}");
        let cut = first_error("{\"t\": 0, \"class\": \"chat\"}\n{\"t\": 1, \"class\": \"chat\"");
        assert!(
            cut.starts_with("2:") && cut.contains("is not JSON"),
            "{cut}"
        );
        let empty = first_error("\n\n");
        assert!(empty.contains("has no lines"), "{empty}");
    }

    #[test]
    fn every_bad_line_is_reported_up_to_a_limit() {
        let text = "{\"t\": 0, \"class\": \"nope\"}\n".repeat(50);
        let errors = read_text(&text, 1.0).unwrap_err();
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[19].location.as_ref().unwrap().line, 20);
    }
}
