//! Request datasets: JSONL chat requests, ShareGPT exports and plain-text prompts, validated
//! line by line once at start and then read by index, so a huge file is never held whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Map, Value};

/// Files up to this size are kept in memory (fast draws); larger ones are indexed and each
/// line is read from disk when drawn.
pub const IN_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// Longest line accepted: a single request larger than this is a mistake, not a prompt.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Roles a chat message may have.
pub const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// One OpenAI chat request (JSON object) per line.
    Jsonl,
    /// `[{"conversations": [{"from": "human", "value": ...}, ...]}, ...]`.
    ShareGpt,
    /// One prompt per line.
    Text,
}

impl DatasetFormat {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jsonl" => Some(Self::Jsonl),
            "sharegpt" => Some(Self::ShareGpt),
            "text" => Some(Self::Text),
            _ => None,
        }
    }

    /// The format a file name implies: `.jsonl`, `.json` (ShareGPT), anything else is text.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => Self::Jsonl,
            Some("json") => Self::ShareGpt,
            _ => Self::Text,
        }
    }
}

/// A dataset that cannot be used, with the place in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct DatasetError {
    pub path: PathBuf,
    /// 1-based line, when the problem is on one.
    pub line: Option<usize>,
    pub message: String,
}

/// Where the validated lines live.
#[derive(Debug)]
enum Store {
    Memory(Bytes),
    Disk(File),
}

/// A validated dataset. Memory per request: 12 bytes of index (offset + length), plus the
/// file itself only when it is at most `IN_MEMORY_LIMIT`.
#[derive(Debug)]
pub struct Dataset {
    path: PathBuf,
    format: DatasetFormat,
    store: Store,
    /// Each request's place, in file order.
    index: Index,
}

/// Byte offsets and lengths of the requests, in two arrays: 12 bytes a request, where a
/// vector of pairs would pad each to 16.
#[derive(Debug, Default, PartialEq)]
struct Index {
    starts: Vec<u64>,
    lens: Vec<u32>,
}

impl Index {
    fn push(&mut self, (start, len): (u64, u32)) {
        self.starts.push(start);
        self.lens.push(len);
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Place of request `i` modulo the length; the index is never empty once built.
    fn get(&self, i: usize) -> (u64, u32) {
        let i = i % self.starts.len().max(1);
        (
            self.starts.get(i).copied().unwrap_or(0),
            self.lens.get(i).copied().unwrap_or(0),
        )
    }
}

impl PartialEq for Dataset {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.format == other.format && self.index == other.index
    }
}

impl Dataset {
    /// Reads and validates `path` once; every bad line is an error naming it.
    pub fn open(path: &Path, format: DatasetFormat) -> Result<Self, DatasetError> {
        Self::open_kept(path, format, IN_MEMORY_LIMIT)
    }

    /// Like `open`, keeping the file in memory only up to `keep` bytes.
    fn open_kept(path: &Path, format: DatasetFormat, keep: u64) -> Result<Self, DatasetError> {
        let err = |line: Option<usize>, message: String| DatasetError {
            path: path.to_path_buf(),
            line,
            message,
        };
        let file = File::open(path).map_err(|e| err(None, format!("cannot open: {e}")))?;
        let size = file
            .metadata()
            .map_err(|e| err(None, format!("cannot read: {e}")))?
            .len();
        if format == DatasetFormat::ShareGpt {
            return Self::open_sharegpt(path, file);
        }
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut index = Index::default();
        let mut buf = Vec::new();
        let mut offset = 0u64;
        let mut line_no = 0usize;
        // A small file is kept as it was read, so what runs is exactly what was validated.
        let mut kept =
            (size <= keep).then(|| Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| err(Some(line_no + 1), format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if n > MAX_LINE_BYTES {
                return Err(err(
                    Some(line_no),
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            let text = std::str::from_utf8(&buf).map_err(|e| {
                err(
                    Some(line_no),
                    format!("not UTF-8 (bad byte at column {})", e.valid_up_to() + 1),
                )
            })?;
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if !trimmed.trim().is_empty() {
                if format == DatasetFormat::Jsonl {
                    check_request(trimmed).map_err(|m| err(Some(line_no), m))?;
                }
                index.push((offset, trimmed.len() as u32));
            }
            if let Some(all) = kept.as_mut() {
                all.extend_from_slice(&buf);
            }
            offset += n as u64;
        }
        if index.is_empty() {
            return Err(err(None, "has no requests".into()));
        }
        let store = match kept {
            Some(all) => Store::Memory(Bytes::from(all)),
            None => Store::Disk(reader.into_inner()),
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            store,
            index,
        })
    }

    /// ShareGPT is one JSON document, so it is parsed whole and kept as converted requests.
    fn open_sharegpt(path: &Path, file: File) -> Result<Self, DatasetError> {
        let err = |line: Option<usize>, message: String| DatasetError {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut text = Vec::new();
        BufReader::new(file)
            .read_to_end(&mut text)
            .map_err(|e| err(None, format!("cannot read: {e}")))?;
        let text = std::str::from_utf8(&text).map_err(|e| {
            let line = text[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            err(Some(line), "not UTF-8".into())
        })?;
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| err(Some(e.line()), format!("not JSON: {e}")))?;
        let Value::Array(items) = doc else {
            return Err(err(
                None,
                "a ShareGPT file is a JSON array of {\"conversations\": [...]}".into(),
            ));
        };
        let mut all = Vec::new();
        let mut index = Index::default();
        for (i, item) in items.iter().enumerate() {
            let request = sharegpt_request(item)
                .map_err(|m| err(None, format!("conversation [{i}]: {m}")))?;
            let start = all.len() as u64;
            serde_json::to_writer(&mut all, &request)
                .map_err(|e| err(None, format!("conversation [{i}]: {e}")))?;
            index.push((start, (all.len() as u64 - start) as u32));
        }
        if index.is_empty() {
            return Err(err(None, "has no conversations".into()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            format: DatasetFormat::ShareGpt,
            store: Store::Memory(Bytes::from(all)),
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether draws are served from memory (so built bodies may be cached too).
    pub fn in_memory(&self) -> bool {
        matches!(self.store, Store::Memory(_))
    }

    /// Request `i` (modulo the length) as a chat-request object.
    pub fn request(&self, i: usize) -> Result<Map<String, Value>, DatasetError> {
        let (offset, len) = self.index.get(i);
        let bytes = match &self.store {
            Store::Memory(all) => all.slice(offset as usize..offset as usize + len as usize),
            Store::Disk(file) => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| DatasetError {
                        path: self.path.clone(),
                        line: None,
                        message: format!("cannot read request {i}: {e}"),
                    })?;
                Bytes::from(buf)
            }
        };
        let changed = |message: String| DatasetError {
            path: self.path.clone(),
            line: None,
            message: format!("request {i} changed since validation: {message}"),
        };
        match self.format {
            DatasetFormat::Text => {
                let text = std::str::from_utf8(&bytes).map_err(|e| changed(e.to_string()))?;
                let mut m = Map::new();
                m.insert(
                    "messages".into(),
                    Value::Array(vec![message("user", text.into())]),
                );
                Ok(m)
            }
            DatasetFormat::Jsonl | DatasetFormat::ShareGpt => {
                match serde_json::from_slice(&bytes).map_err(|e| changed(e.to_string()))? {
                    Value::Object(m) => Ok(m),
                    _ => Err(changed("not an object".into())),
                }
            }
        }
    }
}

/// `{"role": role, "content": text}`.
pub fn message(role: &str, text: Value) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), Value::String(role.into()));
    m.insert("content".into(), text);
    Value::Object(m)
}

/// Checks one JSONL line is an OpenAI chat request gauntlet can send.
fn check_request(line: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("not a chat request: expected a JSON object with `messages`".into());
    };
    check_object(&m)
}

/// The checks shared by datasets and a class's own keys: messages and tools.
pub fn check_object(m: &Map<String, Value>) -> Result<(), String> {
    let Some(messages) = m.get("messages") else {
        return Err("not a chat request: no `messages`".into());
    };
    let Value::Array(messages) = messages else {
        return Err("not a chat request: `messages` is not an array".into());
    };
    check_messages(messages)?;
    if let Some(tools) = m.get("tools") {
        check_tools(tools).map_err(|e| format!("tools{e}"))?;
    }
    if let Some(n) = m.get("max_tokens")
        && !n
            .as_u64()
            .is_some_and(|n| n > 0 && n <= u64::from(u32::MAX))
    {
        return Err(format!("max_tokens {n} is not a whole number > 0"));
    }
    Ok(())
}

fn check_messages(messages: &[Value]) -> Result<(), String> {
    if messages.is_empty() {
        return Err("not a chat request: `messages` is empty".into());
    }
    let mut users = 0;
    for (j, msg) in messages.iter().enumerate() {
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("messages[{j}] has no `role` (one of {})", ROLES.join(", ")))?;
        if !ROLES.contains(&role) {
            return Err(format!(
                "messages[{j}].role `{role}` is not one of {}",
                ROLES.join(", ")
            ));
        }
        match msg.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            None | Some(Value::Null) if role == "assistant" => {}
            _ => return Err(format!("messages[{j}].content must be a string or parts")),
        }
        users += usize::from(role == "user");
    }
    if users == 0 {
        return Err("conversation has no user turn".into());
    }
    Ok(())
}

/// Each tool must be `{type: "function", function: {name: "..."}}`; the error starts with
/// the tool's place (`[2].function.name ...`).
pub fn check_tools(tools: &Value) -> Result<(), String> {
    let Value::Array(tools) = tools else {
        return Err(" must be an array".into());
    };
    for (k, tool) in tools.iter().enumerate() {
        let name = tool
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str);
        if name.is_none_or(|n| n.trim().is_empty()) {
            return Err(format!("[{k}].function.name: a tool without a name"));
        }
        if let Some(t) = tool.get("type")
            && t != "function"
        {
            return Err(format!("[{k}].type {t} is not \"function\""));
        }
    }
    Ok(())
}

/// A ShareGPT conversation as a chat request: its turns up to the last human one, whose
/// answer is what the model under test is asked to produce.
fn sharegpt_request(item: &Value) -> Result<Map<String, Value>, String> {
    let turns = item
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or("no `conversations` array")?;
    let mut messages = Vec::new();
    let mut last_user = None;
    for (j, t) in turns.iter().enumerate() {
        let from = t.get("from").and_then(Value::as_str).unwrap_or_default();
        let value = t
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("conversations[{j}] has no string `value`"))?;
        let role = match from {
            "human" | "user" => "user",
            "gpt" | "assistant" | "chatgpt" | "bard" | "model" => "assistant",
            "system" => "system",
            other => {
                return Err(format!(
                    "conversations[{j}].from `{other}` is not human, gpt or system"
                ));
            }
        };
        if role == "user" {
            last_user = Some(messages.len());
        }
        messages.push(message(role, Value::String(value.into())));
    }
    let Some(last) = last_user else {
        return Err("conversation has no user turn".into());
    };
    messages.truncate(last + 1);
    let mut m = Map::new();
    m.insert("messages".into(), Value::Array(messages));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        (dir, p)
    }

    #[test]
    fn jsonl_lines_are_indexed_and_read_back() {
        let (_d, p) = write(
            "d.jsonl",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"b\"}],\"max_tokens\":7}\n",
        );
        let d = Dataset::open(&p, DatasetFormat::Jsonl).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.request(1).unwrap()["max_tokens"], 7);
        assert_eq!(d.request(2).unwrap()["messages"][0]["content"], "a");
        assert!(d.in_memory());
        // Past the memory limit the same lines are read from disk by offset.
        let d = Dataset::open_kept(&p, DatasetFormat::Jsonl, 0).unwrap();
        assert!(!d.in_memory());
        assert_eq!(d.request(1).unwrap()["max_tokens"], 7);
        assert_eq!(d.request(0).unwrap()["messages"][0]["content"], "a");
    }

    #[test]
    fn bad_lines_are_named() {
        let (_d, p) = write(
            "d.jsonl",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n{\"prompt\":\"x\"}\n",
        );
        let e = Dataset::open(&p, DatasetFormat::Jsonl).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string().contains("d.jsonl:2: not a chat request"),
            "{e}"
        );
        let (_d, p) = write("t.txt", b"fine\n\xff\xfe\n");
        let e = Dataset::open(&p, DatasetFormat::Text).unwrap_err();
        assert!(e.to_string().contains("t.txt:2: not UTF-8"), "{e}");
        let (_d, p) = write(
            "n.jsonl",
            b"{\"messages\":[{\"role\":\"system\",\"content\":\"a\"}]}\n",
        );
        let e = Dataset::open(&p, DatasetFormat::Jsonl).unwrap_err();
        assert!(
            e.to_string().contains(":1: conversation has no user turn"),
            "{e}"
        );
        let (_d, p) = write(
            "t.jsonl",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{\"type\":\"function\",\"function\":{}}]}\n",
        );
        let e = Dataset::open(&p, DatasetFormat::Jsonl).unwrap_err();
        assert!(e.to_string().contains("a tool without a name"), "{e}");
    }

    #[test]
    fn sharegpt_keeps_turns_up_to_the_last_human_one() {
        let (_d, p) = write(
            "s.json",
            br#"[{"conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"},{"from":"human","value":"more"},{"from":"gpt","value":"sure"}]}]"#,
        );
        let d = Dataset::open(&p, DatasetFormat::ShareGpt).unwrap();
        let r = d.request(0).unwrap();
        let m = r["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[2]["content"], "more");
        let (_d, p) = write(
            "s.json",
            br#"[{"conversations":[{"from":"gpt","value":"x"}]}]"#,
        );
        let e = Dataset::open(&p, DatasetFormat::ShareGpt).unwrap_err();
        assert!(e.to_string().contains("no user turn"), "{e}");
    }
}
