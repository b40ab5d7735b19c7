//! A small block-style YAML writer for the manifests: keys in the order they were built, a
//! comment above any key, file contents as literal blocks, and every string that YAML 1.1
//! (PyYAML, older kubectl) could read as something else written double-quoted.

use std::fmt::Write as _;

/// One YAML value, built in the order it is to be written.
#[derive(Debug, Clone, PartialEq)]
pub enum YamlNode {
    Map(Vec<YamlEntry>),
    List(Vec<YamlNode>),
    Str(String),
    Int(i64),
    Bool(bool),
}

/// A key of a map, with an optional comment written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlEntry {
    pub key: String,
    pub comment: Option<String>,
    pub value: YamlNode,
}

impl YamlNode {
    /// A map from `(key, value)` pairs, in that order.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, YamlNode)>) -> Self {
        Self::Map(
            entries
                .into_iter()
                .map(|(key, value)| YamlEntry {
                    key: key.into(),
                    comment: None,
                    value,
                })
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// Adds a comment above `key` of this map; does nothing to other nodes or missing keys.
    pub fn with_comment(mut self, key: &str, comment: impl Into<String>) -> Self {
        if let Self::Map(entries) = &mut self
            && let Some(e) = entries.iter_mut().find(|e| e.key == key)
        {
            e.comment = Some(comment.into());
        }
        self
    }

    /// This node as one YAML document (without the `---` separator).
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self {
            Self::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
            Self::List(items) if !items.is_empty() => write_list(&mut out, items, 0),
            other => {
                out.push_str(&inline(other).unwrap_or_default());
                out.push('\n');
            }
        }
        out
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Comment lines are wrapped at this width; a line that starts with a space (a command to
/// copy) is kept whole.
const WIDTH: usize = 100;

fn write_comment(out: &mut String, comment: &str, indent: usize) {
    for line in comment.lines() {
        for piece in wrap(line, WIDTH.saturating_sub(indent + 2).max(40)) {
            pad(out, indent);
            if piece.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {piece}");
            }
        }
    }
}

/// `line` broken at spaces into pieces of at most `width` characters where it can be.
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    if line.starts_with(' ') || line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    pieces.push(current);
    pieces
}

fn write_map(out: &mut String, entries: &[YamlEntry], indent: usize) {
    for (i, e) in entries.iter().enumerate() {
        if let Some(c) = &e.comment {
            // The first key of a list item sits after its "- ", where no comment can go.
            if i > 0 || !out.ends_with("- ") {
                write_comment(out, c, indent);
            }
        }
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&scalar(&e.key));
        out.push(':');
        write_value(out, &e.value, indent);
    }
}

fn write_list(out: &mut String, items: &[YamlNode], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            YamlNode::Map(entries) if !entries.is_empty() => write_map(out, entries, indent + 2),
            YamlNode::List(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            other => {
                let mut rest = String::new();
                write_value(&mut rest, other, indent);
                // write_value starts with the separating space (or a block header).
                out.pop();
                out.push_str(&rest);
            }
        }
    }
}

/// Everything after `key:` (or after `- `, with the caller dropping one space).
fn write_value(out: &mut String, value: &YamlNode, indent: usize) {
    match value {
        YamlNode::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        YamlNode::List(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent + 2);
        }
        YamlNode::Str(s) if literal_block_fits(s) => write_block(out, s, indent + 2),
        other => {
            out.push(' ');
            out.push_str(&inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, on one line; `None` for a non-empty collection.
fn inline(node: &YamlNode) -> Option<String> {
    match node {
        YamlNode::Map(e) if e.is_empty() => Some("{}".into()),
        YamlNode::List(i) if i.is_empty() => Some("[]".into()),
        YamlNode::Map(_) | YamlNode::List(_) => None,
        YamlNode::Str(s) => Some(scalar(s)),
        YamlNode::Int(n) => Some(n.to_string()),
        YamlNode::Bool(b) => Some(b.to_string()),
    }
}

/// Words YAML 1.1 reads as booleans or null when left unquoted.
const SPECIAL_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

/// A string as a plain scalar when nothing can misread it, else double-quoted (a JSON string
/// is a valid YAML double-quoted scalar).
fn scalar(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !SPECIAL_WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Whether `s` can be written as a `|` block and read back byte for byte: more than one line,
/// and nothing a block cannot hold literally (control characters such as a tab or a carriage
/// return, a BOM, Unicode line separators).
fn literal_block_fits(s: &str) -> bool {
    s.contains('\n')
        && s.chars().all(|c| {
            c == '\n' || (!c.is_control() && c != '\u{feff}' && c != '\u{2028}' && c != '\u{2029}')
        })
}

fn write_block(out: &mut String, s: &str, indent: usize) {
    out.push_str(" |");
    // Indentation indicator: the first line's own leading spaces are content, not indent.
    if s.lines()
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with(' '))
    {
        let _ = write!(out, "{indent}");
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    });
    out.push('\n');
    for line in s[..body.len()].split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    // Kept newlines past the first ("|+") are written as empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lists_and_scalars_nest_in_block_style() {
        let doc = YamlNode::map([
            ("apiVersion", YamlNode::str("v1")),
            (
                "items",
                YamlNode::List(vec![
                    YamlNode::map([("name", YamlNode::str("a")), ("port", YamlNode::Int(7070))]),
                    YamlNode::str("plain"),
                ]),
            ),
            ("empty", YamlNode::Map(vec![])),
            ("flag", YamlNode::Bool(true)),
        ])
        .with_comment("flag", "why it is set");
        assert_eq!(
            doc.to_document(),
            "apiVersion: v1\nitems:\n  - name: a\n    port: 7070\n  - plain\nempty: {}\n\
             # why it is set\nflag: true\n"
        );
    }

    #[test]
    fn strings_yaml_would_misread_are_quoted() {
        for s in [
            "4",
            "yes",
            "No",
            "1:20",
            "a: b",
            "",
            "x #y",
            "gauntlet:0.1.0",
            "-x",
        ] {
            assert!(scalar(s).starts_with('"'), "{s} left plain");
        }
        assert_eq!(scalar("quickstart.toml"), "quickstart.toml");
    }

    #[test]
    fn file_contents_become_literal_blocks_with_the_right_chomping() {
        let doc = |s: &str| YamlNode::map([("f", YamlNode::str(s))]).to_document();
        assert_eq!(doc("a\nb\n"), "f: |\n  a\nb\n".replace("\nb", "\n  b"));
        assert_eq!(doc("a\n\nb"), "f: |-\n  a\n\n  b\n");
        assert_eq!(doc("a\n\n"), "f: |+\n  a\n\n");
        assert_eq!(doc(" x\ny\n"), "f: |2\n   x\n  y\n");
        // A tab or a carriage return cannot be a block: quoted instead.
        assert_eq!(doc("a\r\nb\n"), "f: \"a\\r\\nb\\n\"\n");
    }
}
