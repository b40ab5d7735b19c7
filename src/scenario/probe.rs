//! Compiling `[probe]`: the trickle `gauntlet probe` sends, its SLA window, burn-rate alerts,
//! rolling report and daily caps, each checked where it is written; and the keys written
//! literally in the file, which probe mode refuses.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use toml::Spanned;

use super::budget::{dollars, token_count};
use super::model::{BurnAlert, ProbeSettings};
use super::raw::{RawBurnAlert, RawScenario};
use crate::config::Check;

/// The most a probe may send per second: beyond it a probe is load (`gauntlet run` is for
/// that), and the endpoint's owner would rightly call it so.
pub const MAX_PROBE_RATE: f64 = 10.0;

/// Most rotated windows a probe keeps: beyond it the folder is an archive, not a report.
const MAX_KEEP: i64 = 10_000;

pub(super) fn compile(c: &mut Check<'_>, raw: &RawScenario) -> ProbeSettings {
    let defaults = ProbeSettings {
        literal_keys: literal_keys(c, raw),
        ..ProbeSettings::default()
    };
    let Some(spanned) = &raw.probe else {
        return defaults;
    };
    let p = spanned.get_ref();
    let (every, rate) = match &p.rate {
        Some(v) => match parse_rate(v.get_ref()) {
            Ok(every) => (every, v.get_ref().trim().to_string()),
            Err(m) => {
                c.error(v.span(), "probe.rate", m);
                (defaults.every, defaults.rate.clone())
            }
        },
        None => (defaults.every, defaults.rate.clone()),
    };
    let duration = |c: &mut Check<'_>, v: &Option<Spanned<String>>, key: &str, default| {
        v.as_ref()
            .map_or(Some(default), |v| c.positive_duration(v, key))
            .unwrap_or(default)
    };
    let window = duration(c, &p.window, "probe.window", defaults.window);
    let report_every = duration(
        c,
        &p.report_every,
        "probe.report_every",
        defaults.report_every,
    );
    let keep = match &p.keep {
        Some(v) => match usize::try_from(*v.get_ref())
            .ok()
            .filter(|_| *v.get_ref() <= MAX_KEEP)
            .and_then(NonZeroUsize::new)
        {
            Some(n) => n,
            None => {
                c.error(
                    v.span(),
                    "probe.keep",
                    format!(
                        "{} is not a number of windows from 1 to {MAX_KEEP}",
                        v.get_ref()
                    ),
                );
                defaults.keep
            }
        },
        None => defaults.keep,
    };
    let max_cost_per_day = p
        .max_cost_per_day
        .as_ref()
        .and_then(|v| dollars(c, v, "probe.max_cost_per_day"));
    let max_tokens_per_day = p
        .max_tokens_per_day
        .as_ref()
        .and_then(|v| token_count(c, v, "probe.max_tokens_per_day"));
    let alerts = match &p.alerts {
        Some(list) => alerts(c, list),
        None => defaults.alerts.clone(),
    };
    ProbeSettings {
        every,
        rate,
        window,
        report_every,
        keep,
        max_cost_per_day,
        max_tokens_per_day,
        alerts,
        ..defaults
    }
}

/// "N/s", "N/min" or "N/h": the time between two requests, at most `MAX_PROBE_RATE` a second.
pub(super) fn parse_rate(text: &str) -> Result<Duration, String> {
    let shape = || format!("{text:?} is not a rate; write it like \"1/s\", \"10/min\" or \"30/h\"");
    let (n, unit) = text.trim().split_once('/').ok_or_else(shape)?;
    let n: f64 = n.trim().parse().map_err(|_| shape())?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(shape()),
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{text:?}: the count must be above zero"));
    }
    let per_second = n / per;
    if per_second > MAX_PROBE_RATE {
        return Err(format!(
            "{text:?} is {per_second} requests per second; a probe sends at most \
             {MAX_PROBE_RATE}/s (more is load: use `gauntlet run`)"
        ));
    }
    Ok(Duration::from_secs_f64(per / n))
}

fn alerts(c: &mut Check<'_>, list: &Spanned<Vec<Spanned<RawBurnAlert>>>) -> Vec<BurnAlert> {
    if list.get_ref().is_empty() {
        c.error(
            list.span(),
            "probe.alerts",
            "is empty; leave it out for the default page (1h/5m at 14.4x) and ticket \
             (6h/30m at 6x) alerts",
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, a) in list.get_ref().iter().enumerate() {
        let key = |k: &str| format!("probe.alerts[{i}].{k}");
        let a = a.get_ref();
        let name = c.name(&a.name, &key("name"));
        if let Some(n) = &name
            && !seen.insert(n.clone())
        {
            c.error(
                a.name.span(),
                key("name"),
                format!("duplicate alert name `{n}`; each alert needs its own name"),
            );
        }
        let long = c.positive_duration(&a.long_window, &key("long_window"));
        let short = c.positive_duration(&a.short_window, &key("short_window"));
        if let (Some(l), Some(s)) = (long, short)
            && s >= l
        {
            c.error(
                a.short_window.span(),
                key("short_window"),
                format!(
                    "{:?} is not shorter than long_window ({:?}); the short window says the \
                     burn is still going on, so it is the shorter one (e.g. 5m against 1h)",
                    a.short_window.get_ref(),
                    a.long_window.get_ref()
                ),
            );
        }
        let factor = *a.burn_rate.get_ref();
        let factor_ok = factor.is_finite() && factor > 0.0;
        if !factor_ok {
            c.error(
                a.burn_rate.span(),
                key("burn_rate"),
                format!("{factor} is not a burn rate above zero; write it like 14.4"),
            );
        }
        if let (Some(name), Some(long), Some(short), true) = (name, long, short, factor_ok) {
            out.push(BurnAlert {
                name,
                long,
                short,
                factor,
            });
        }
    }
    out
}

/// Every key or token written in the file itself rather than as "env:NAME", as the error
/// `gauntlet probe` gives for it.
fn literal_keys(c: &Check<'_>, raw: &RawScenario) -> Vec<crate::config::ConfigError> {
    let literal = |v: &Spanned<String>| !v.get_ref().trim().starts_with("env:");
    let refuse = |v: &Spanned<String>, key: String| {
        c.src.error_at(
            v.span(),
            key,
            "probe mode reaches real endpoints and takes keys from the environment only: \
             write \"env:NAME\" and export NAME",
        )
    };
    let mut out = Vec::new();
    for (i, u) in raw.upstreams.iter().enumerate() {
        let u = u.get_ref();
        for (field, v) in [("api_key", &u.api_key), ("admin_token", &u.admin_token)] {
            if let Some(v) = v.as_ref().filter(|v| literal(v)) {
                out.push(refuse(v, format!("upstreams[{i}].{field}")));
            }
        }
    }
    for (i, r) in raw.classes().enumerate() {
        if let Some(v) = r.get_ref().api_key.as_ref().filter(|v| literal(v)) {
            out.push(refuse(v, format!("requests[{i}].api_key")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "[load]\nduration = \"1s\"\nrate = 1\n[target]\nurl = \"http://127.0.0.1:9\"\n";

    fn probe_of(extra: &str) -> ProbeSettings {
        crate::scenario::load_str("p.toml", format!("{BASE}{extra}"))
            .unwrap()
            .probe
    }

    #[test]
    fn a_scenario_without_probe_gets_the_workbook_defaults() {
        let p = probe_of("[[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"hi\"\n");
        assert_eq!(p.every, Duration::from_secs(1));
        assert_eq!(p.window, Duration::from_secs(3600));
        assert_eq!(p.keep.get(), 24);
        let pairs: Vec<_> = p
            .alerts
            .iter()
            .map(|a| (a.name.as_str(), a.long, a.short, a.factor))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "page",
                    Duration::from_secs(3600),
                    Duration::from_secs(300),
                    14.4
                ),
                (
                    "ticket",
                    Duration::from_secs(6 * 3600),
                    Duration::from_secs(1800),
                    6.0
                ),
            ]
        );
        assert!(p.literal_keys.is_empty());
    }

    #[test]
    fn probe_keys_compile_and_literal_keys_are_located() {
        let p = probe_of(
            "[[upstreams]]\nname = \"up\"\nurl = \"http://127.0.0.1:9\"\nadmin_token = \"t0k\"\n\
             [[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"hi\"\napi_key = \"env:PATH\"\n\
             [[requests]]\nname = \"b\"\nmodel = \"m\"\nprompt = \"hi\"\napi_key = \"sk-1\"\n\
             [probe]\nrate = \"6/min\"\nwindow = \"10m\"\nkeep = 3\nmax_cost_per_day = 2\n\
             max_tokens_per_day = 5000\n\
             alerts = [{ name = \"fast\", long_window = \"2s\", short_window = \"1s\", burn_rate = 2 }]\n",
        );
        assert_eq!(p.every, Duration::from_secs(10));
        assert_eq!(p.rate, "6/min");
        assert_eq!(p.window, Duration::from_secs(600));
        assert_eq!(p.keep.get(), 3);
        assert_eq!(p.max_cost_per_day, Some(2.0));
        assert_eq!(p.max_tokens_per_day, Some(5000));
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].short, Duration::from_secs(1));
        // The admin token and class b's key are literal; class a's comes from the environment.
        let keys: Vec<String> = p.literal_keys.iter().map(ToString::to_string).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            keys[0].starts_with("p.toml:9:15: `upstreams[0].admin_token`"),
            "{keys:?}"
        );
        assert!(
            keys[1].starts_with("p.toml:19:11: `requests[1].api_key`"),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .all(|k| !k.contains("sk-1") && !k.contains("t0k"))
        );
    }

    #[test]
    fn rates_read_as_the_time_between_requests() {
        assert_eq!(parse_rate("1/s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_rate(" 10 / min "), Ok(Duration::from_secs(6)));
        assert_eq!(parse_rate("30/h"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_rate("4/s"), Ok(Duration::from_millis(250)));
        assert!(parse_rate("11/s").unwrap_err().contains("at most 10/s"));
        assert!(parse_rate("0/s").unwrap_err().contains("above zero"));
        assert!(
            parse_rate("1 per second")
                .unwrap_err()
                .contains("not a rate")
        );
        assert!(parse_rate("1/day").unwrap_err().contains("not a rate"));
    }
}
