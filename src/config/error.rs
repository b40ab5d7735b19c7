//! Configuration errors that point at the place in the file a person has to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where in a file something stands, 1-based as editors count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem in a configuration file: where, which key, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub location: Option<Location>,
    /// Dotted key path such as `requests[2].weight`; empty for file-level problems.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// An error about the whole file (cannot read it, not UTF-8, too large).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            location: Some(Location {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
            }),
            key: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one pass over a file, so a user fixes them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// The text of a configuration file, kept so byte spans can be turned into line:col.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Configuration files are small; anything larger is a mistake (a log, a binary) not a config.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

impl Source {
    /// The folder the file's relative paths (profiles, datasets, traces) start from.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// Reads a file, refusing what cannot be a configuration file with a clear message.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read file: {e}")))?;
        if meta.is_dir() {
            return Err(ConfigError::file(
                path,
                "is a directory; give the path of a .toml file",
            ));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::file(
                path,
                format!(
                    "file is {} bytes; configuration files are limited to {} bytes",
                    meta.len(),
                    MAX_CONFIG_BYTES
                ),
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read file: {e}")))?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(path, text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let before = &e.as_bytes()[..at];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                let col = at
                    - before
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |p| p + 1)
                    + 1;
                Err(ConfigError {
                    location: Some(Location {
                        file: path.to_path_buf(),
                        line,
                        col,
                    }),
                    key: String::new(),
                    message: "file is not valid UTF-8; save it as UTF-8 text".into(),
                })
            }
        }
    }

    /// Turns a byte offset into a 1-based line and column (columns count characters).
    pub fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let offset = (0..=offset)
            .rev()
            .find(|&o| self.text.is_char_boundary(o))
            .unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.path.clone(),
            line,
            col,
        }
    }

    /// An error at a span of this file.
    pub fn error_at(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            location: Some(self.locate(span.start)),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Parses the file as TOML into `T`, turning serde's complaint into a located error
    /// with a "did you mean" for misspelt keys.
    pub fn parse_toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let location = e.span().map(|s| self.locate(s.start));
            ConfigError {
                location: location.or_else(|| Some(self.locate(0))),
                key: String::new(),
                message: improve_toml_message(e.message()),
            }
        })
    }
}

/// serde names Rust types ("expected f64"); say what to write instead.
const PLAIN_TYPES: [(&str, &str); 6] = [
    ("expected f64", "expected a number"),
    ("expected i64", "expected a whole number"),
    ("expected u64", "expected a whole number >= 0"),
    ("expected u32", "expected a whole number >= 0"),
    ("expected u16", "expected a whole number from 0 to 65535"),
    ("expected a boolean", "expected true or false"),
];

/// serde says "unknown field `retires`, expected one of `a`, `b`"; add the likely fix. It
/// also names Rust types, which become plain words.
fn improve_toml_message(message: &str) -> String {
    let message = message.trim_end();
    if let Some((rest, plain)) = PLAIN_TYPES
        .iter()
        .find_map(|(rust, plain)| Some((message.strip_suffix(rust)?, plain)))
    {
        return format!("{rest}{plain}");
    }
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match did_you_mean(unknown, candidates.iter().copied()) {
        Some(best) => format!("{message} (did you mean `{best}`?)"),
        None => message.to_string(),
    }
}

/// The closest candidate to a misspelt name, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    unknown: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(unknown, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_chars() {
        let src = Source::new("a.toml", "x = 1\nné = 2\n");
        let loc = src.locate(src.text.find('=').map(|_| 9).unwrap_or(0));
        assert_eq!((loc.line, loc.col), (2, 3));
        assert_eq!(src.locate(0).to_string(), "a.toml:1:1");
    }

    #[test]
    fn suggests_close_key() {
        let msg =
            improve_toml_message("unknown field `retires`, expected one of `retries`, `timeout`");
        assert!(msg.ends_with("(did you mean `retries`?)"), "{msg}");
        let msg = improve_toml_message("unknown field `zzz`, expected `retries` or `timeout`");
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn rust_type_names_become_plain_words() {
        let msg = improve_toml_message("invalid type: string \"x\", expected f64");
        assert_eq!(msg, "invalid type: string \"x\", expected a number");
    }
}
