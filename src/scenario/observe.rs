//! `[observe]`: what inside the system under test a run watches — a Prometheus `/metrics`
//! scraped every interval and a local process read from /proc — checked where it is written.
//! Whether the process exists is only known when the run starts (the engine checks it then).

use toml::Spanned;

use super::model::{Observe, WatchedProcess};
use super::raw::RawObserve;
use crate::config::Check;

pub(super) fn compile(c: &mut Check<'_>, raw: Option<&Spanned<RawObserve>>) -> Observe {
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return Observe::default();
    };
    let metrics_url = raw.metrics_url.as_ref().and_then(|u| {
        let text = u.get_ref().trim();
        match check_url(text) {
            Ok(()) => Some(text.to_string()),
            Err(why) => {
                c.error(
                    u.span(),
                    "observe.metrics_url",
                    format!("{text:?} {why}; write it like \"http://127.0.0.1:4000/metrics\""),
                );
                None
            }
        }
    });
    let metrics = raw
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| {
            let name = m.get_ref();
            if is_metric_name(name) {
                Some(name.clone())
            } else {
                c.error(
                    m.span(),
                    "observe.metrics",
                    format!(
                        "{name:?} is not a Prometheus metric name (letters, digits, `_` and \
                         `:`, not starting with a digit)"
                    ),
                );
                None
            }
        })
        .collect();
    let pid = raw.pid.as_ref().and_then(|p| {
        match u32::try_from(*p.get_ref()) {
            // Linux pids fit in an i32; 0 is the scheduler, not a process one can watch.
            Ok(n) if n > 0 && i32::try_from(n).is_ok() => Some(n),
            _ => {
                c.error(
                    p.span(),
                    "observe.pid",
                    format!(
                        "{} is not a process id (a whole number above 0)",
                        p.get_ref()
                    ),
                );
                None
            }
        }
    });
    let name = raw.process.as_ref().and_then(|p| {
        let name = p.get_ref().trim();
        if name.is_empty() || name.contains('/') {
            c.error(
                p.span(),
                "observe.process",
                format!(
                    "{:?} is not a process name: give the program's name, e.g. \"litellm\"",
                    p.get_ref()
                ),
            );
            None
        } else {
            Some(name.to_string())
        }
    });
    if let (Some(_), Some(p)) = (&raw.pid, &raw.process) {
        c.error(
            p.span(),
            "observe.process",
            "set `pid` or `process`, not both: one process is watched",
        );
    }
    Observe {
        metrics_url,
        metrics,
        process: match (pid, name) {
            (Some(pid), None) => Some(WatchedProcess::Pid(pid)),
            (None, Some(name)) => Some(WatchedProcess::Name(name)),
            _ => None,
        },
    }
}

/// An http(s) URL with a host: where a scraper can send a GET.
fn check_url(text: &str) -> Result<(), &'static str> {
    let uri: http::Uri = text.parse().map_err(|_| "is not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("is not an http:// or https:// URL"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    Ok(())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the exposition format's metric names.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names_are_checked() {
        assert!(check_url("http://127.0.0.1:4000/metrics").is_ok());
        assert!(check_url("https://gw.internal/metrics").is_ok());
        assert!(check_url("ftp://gw/metrics").is_err());
        assert!(check_url("127.0.0.1:4000/metrics").is_err());
        assert!(check_url("not a url").is_err());
        assert!(is_metric_name("gateway_attempts_total"));
        assert!(is_metric_name("job:rate5m"));
        assert!(!is_metric_name("9lives"));
        assert!(!is_metric_name("with-dash"));
        assert!(!is_metric_name(""));
    }
}
