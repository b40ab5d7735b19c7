//! The checker every loader (mock profiles, gateway files, scenarios) turns raw values into
//! typed ones with, collecting every located error; and the rules they share: names, whole
//! numbers, weights, references to names defined elsewhere, secrets.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Source, did_you_mean};
use super::secret::Secret;
use crate::tokenizer::Encoding;

use super::units::{
    Dist, DistUnit, DurationDist, RawDist, RawNum, compile_dist, parse_duration, parse_ratio,
};

/// Longest name accepted for upstreams, request classes and profiles.
pub const MAX_NAME_LEN: usize = 64;

/// The largest weight of a request class or a route target; larger is a typo.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Names end up in HTTP headers, ids, report paths and `--class` filters, so they stay plain;
/// `.` and `..` would name a folder other than their own.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Collects errors while raw config values are turned into typed ones.
pub struct Check<'a> {
    pub src: &'a Source,
    errors: Vec<ConfigError>,
}

impl<'a> Check<'a> {
    pub fn new(src: &'a Source) -> Self {
        Self {
            src,
            errors: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) {
        let e = self.src.error_at(span, key, msg);
        self.errors.push(e);
    }

    /// Records an error produced elsewhere (for example by a nested loader).
    pub fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The value if nothing went wrong, otherwise every error found.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    pub fn duration(&mut self, v: &Spanned<String>, key: &str) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(v.span(), key, m);
                None
            }
        }
    }

    /// A duration that must be longer than zero (timeouts, stage lengths).
    pub fn positive_duration(&mut self, v: &Spanned<String>, key: &str) -> Option<Duration> {
        let d = self.duration(v, key)?;
        if d.is_zero() {
            self.error(
                v.span(),
                key,
                format!("`{}` must be longer than zero", v.get_ref()),
            );
            return None;
        }
        Some(d)
    }

    pub fn ratio(&mut self, v: &Spanned<RawNum>, key: &str) -> Option<f64> {
        match parse_ratio(v.get_ref()) {
            Ok(r) => Some(r),
            Err(m) => {
                self.error(v.span(), key, m);
                None
            }
        }
    }

    /// A finite number within `range` (inclusive), else an error naming the allowed range.
    pub fn number_in(
        &mut self,
        v: &Spanned<f64>,
        key: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let n = *v.get_ref();
        if n.is_finite() && range.contains(&n) {
            Some(n)
        } else {
            self.error(
                v.span(),
                key,
                format!(
                    "{n} is out of range; allowed {}..={}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    pub fn duration_dist(&mut self, v: &Spanned<RawDist>, key: &str) -> Option<DurationDist> {
        self.dist(v, key, DistUnit::Duration).map(DurationDist)
    }

    /// A distribution of plain numbers (token rates, token counts) within `max`.
    pub fn number_dist(&mut self, v: &Spanned<RawDist>, key: &str, max: f64) -> Option<Dist> {
        let d = self.dist(v, key, DistUnit::Number)?;
        let too_big = match d {
            Dist::Fixed { value } => value > max,
            Dist::Uniform { max: hi, .. } => hi > max,
            Dist::Normal { mean, .. } => mean > max,
            Dist::LogNormal { p99, .. } => p99 > max,
        };
        if too_big {
            self.error(
                v.span(),
                key,
                format!("values above {max} are not supported"),
            );
            return None;
        }
        Some(d)
    }

    fn dist(&mut self, v: &Spanned<RawDist>, key: &str, unit: DistUnit) -> Option<Dist> {
        let span = v.span();
        let result = compile_dist(v.get_ref(), unit);
        match result {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(span, key, m);
                None
            }
        }
    }
}

/// The rules several loaders share, so a name, a weight or a secret means the same everywhere.
impl Check<'_> {
    /// A name as [`valid_name`] allows it.
    pub fn name(&mut self, v: &Spanned<String>, key: &str) -> Option<String> {
        let s = v.get_ref();
        if valid_name(s) {
            return Some(s.clone());
        }
        self.error(
            v.span(),
            key,
            format!(
                "{s:?} is not a valid name; use 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.` (not `.` or `..`)"
            ),
        );
        None
    }

    /// A tokenizer's vocabulary by name (`o200k_base`, `cl100k_base`, or without `_base`).
    pub fn encoding(&mut self, v: &Spanned<String>, key: &str) -> Option<Encoding> {
        let found = Encoding::from_name(v.get_ref());
        if found.is_none() {
            self.error(
                v.span(),
                key,
                format!(
                    "unknown tokenizer {:?}; use o200k_base or cl100k_base",
                    v.get_ref()
                ),
            );
        }
        found
    }

    /// An error for a name that refers to nothing, with the closest defined name if any.
    /// `what` is the kind of thing ("upstream"), `table` where such things are defined.
    pub fn unknown_name(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        what: &str,
        table: &str,
        known: &[&str],
    ) {
        let name = v.get_ref();
        let hint = did_you_mean(name, known.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let list = if known.is_empty() {
            format!("none are defined; add a {table} entry")
        } else {
            format!("defined: {}", known.join(", "))
        };
        self.error(
            v.span(),
            key,
            format!("unknown {what} `{name}`{hint}; {list}"),
        );
    }

    /// A whole number within `range`, from a value TOML may have given as a float (`80.0`).
    pub fn whole(
        &mut self,
        v: &Spanned<f64>,
        key: &str,
        range: RangeInclusive<u64>,
        what: &str,
    ) -> Option<u64> {
        let n = *v.get_ref();
        let (lo, hi) = (*range.start(), *range.end());
        // Both bounds are far below 2^53, so the comparisons and the cast are exact.
        if n.is_finite() && n.fract() == 0.0 && n >= lo as f64 && n <= hi as f64 {
            return Some(n as u64);
        }
        self.error(
            v.span(),
            key,
            format!("{n} is not allowed; {what} must be a whole number from {lo} to {hi}"),
        );
        None
    }

    /// The share of a weighted pick: a whole number from 1 to [`MAX_WEIGHT`].
    pub fn weight(&mut self, v: &Spanned<f64>, key: &str) -> Option<NonZeroU32> {
        let n = self.whole(v, key, 1..=u64::from(MAX_WEIGHT), "a weight")?;
        NonZeroU32::new(u32::try_from(n).ok()?)
    }

    /// A literal secret or `"env:NAME"`, resolved now so a missing variable fails before a run.
    pub fn secret(&mut self, v: &Spanned<String>, key: &str) -> Option<Secret> {
        match Secret::resolve(v.get_ref()) {
            Ok(s) => Some(s),
            Err(m) => {
                self.error(v.span(), key, m);
                None
            }
        }
    }

    /// Refuses an old `*_env = "VAR"` key, naming the spelling that replaced it.
    pub fn old_env_key(&mut self, v: &Spanned<String>, key: &str, new_key: &str) {
        self.error(
            v.span(),
            key,
            format!(
                "`*_env` keys are gone; write `{new_key} = \"env:{}\"` instead",
                v.get_ref().trim()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanned<T>(v: T) -> Spanned<T> {
        Spanned::new(0..1, v)
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(valid_name("deepseek-v4.flash_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(".") && !valid_name(".."));
        assert!(valid_name("v1.2") && valid_name("..."));
        assert!(!valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
        let src = Source::new("n.toml", "x");
        let mut c = Check::new(&src);
        assert_eq!(
            c.name(&spanned("ok".to_string()), "name"),
            Some("ok".into())
        );
        assert_eq!(c.name(&spanned("no/slash".to_string()), "name"), None);
        let e = c.finish(()).unwrap_err().to_string();
        assert!(
            e.contains("n.toml:1:1: `name`: \"no/slash\" is not a valid name"),
            "{e}"
        );
    }

    #[test]
    fn weights_are_whole_and_positive() {
        let src = Source::new("w.toml", "x");
        let mut c = Check::new(&src);
        assert_eq!(c.weight(&spanned(80.0), "w"), NonZeroU32::new(80));
        for bad in [0.0, -3.0, 1.5, f64::NAN, 1e7] {
            assert_eq!(c.weight(&spanned(bad), "w"), None, "{bad}");
        }
        let e = c.finish(()).unwrap_err();
        assert_eq!(e.0.len(), 5);
        assert!(
            e.0[2].message.contains("whole number from 1 to 1000000"),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let src = Source::new("u.toml", "x");
        let mut c = Check::new(&src);
        c.unknown_name(
            &spanned("qwn".into()),
            "k",
            "upstream",
            "[[upstreams]]",
            &["qwen", "a"],
        );
        c.unknown_name(&spanned("z".into()), "k", "upstream", "[[upstreams]]", &[]);
        let e = c.finish(()).unwrap_err();
        assert_eq!(
            e.0[0].message,
            "unknown upstream `qwn` (did you mean `qwen`?); defined: qwen, a"
        );
        assert!(
            e.0[1]
                .message
                .contains("none are defined; add a [[upstreams]] entry")
        );
    }
}
