//! Secrets in configuration files: one convention everywhere a key or token can be given, a
//! literal or `"env:NAME"`, and a type that never prints its value.

/// A value that must never be printed, logged or written into a report.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret as written: `"env:NAME"` takes the variable's value now, so a missing
    /// variable is found before anything starts; anything else is the secret itself. Both are
    /// trimmed, since no key or token is meant to begin or end with blanks.
    pub fn resolve(written: &str) -> Result<Self, String> {
        let Some(var) = written.trim().strip_prefix("env:") else {
            let literal = written.trim();
            if literal.is_empty() {
                return Err("is empty; write the value or \"env:NAME\"".into());
            }
            return Ok(Self::new(literal));
        };
        let var = var.trim();
        let valid = !var.is_empty()
            && var
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !valid {
            return Err(format!(
                "`env:{var}` does not name an environment variable; write it like \
                 \"env:OPENAI_API_KEY\""
            ));
        }
        match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(Self::new(value.trim())),
            Ok(_) => Err(format!("environment variable `{var}` is set but empty")),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "environment variable `{var}` is not set; export it before running"
            )),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable `{var}` is not valid UTF-8"))
            }
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_malformed_references() {
        assert_eq!(Secret::resolve(" gk-1 ").unwrap().expose(), "gk-1");
        assert!(Secret::resolve("  ").unwrap_err().contains("is empty"));
        let e = Secret::resolve("env:NOT A NAME").unwrap_err();
        assert!(e.contains("does not name an environment variable"), "{e}");
        assert!(!format!("{:?}", Secret::new("gk-1")).contains("gk-1"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        // PATH is set in every test environment; this name is in none.
        assert!(!Secret::resolve("env:PATH").unwrap().expose().is_empty());
        let e = Secret::resolve("env:GAUNTLET_SURELY_UNSET_4711").unwrap_err();
        assert!(e.contains("`GAUNTLET_SURELY_UNSET_4711` is not set"), "{e}");
    }
}
