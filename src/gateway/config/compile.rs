//! Compilation of the raw gateway file into typed settings, collecting every located error
//! (unknown upstream names, bad durations, missing environment variables, duplicates), with
//! the rules for names, weights and secrets that scenarios use too (`config::Check`).

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use toml::Spanned;

use crate::config::{Check, ConfigError};

use super::raw::{
    RawAdmission, RawBreaker, RawGatewayTable, RawKey, RawRetry, RawRoute, RawTarget, RawTier,
    RawTimeouts, RawUpstream,
};
use super::{
    AdmissionConfig, BreakerConfig, Config, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIER, KeyConfig,
    PRO_TIER, RetryConfig, RouteConfig, Target, TierConfig, Timeouts, UpstreamApi, UpstreamConfig,
};

pub(super) fn compile_upstreams(
    check: &mut Check<'_>,
    raw: &[Spanned<RawUpstream>],
) -> Vec<UpstreamConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        let u = u.get_ref();
        let name = check.name(&u.name, &format!("{key}.name"));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            check.error(
                u.name.span(),
                format!("{key}.name"),
                format!("upstream `{name}` is defined twice"),
            );
        }
        if let Err(m) = validate_url(u.url.get_ref()) {
            check.error(u.url.span(), format!("{key}.url"), m);
        }
        if let Some(old) = &u.api_key_env {
            check.old_env_key(old, &format!("{key}.api_key_env"), "api_key");
        }
        let api_key = u
            .api_key
            .as_ref()
            .and_then(|v| check.secret(v, &format!("{key}.api_key")));
        let max_concurrent = u
            .max_concurrent
            .as_ref()
            .and_then(|v| nonzero(check, v, &format!("{key}.max_concurrent")));
        let api = match &u.api {
            None => UpstreamApi::Chat,
            Some(a) => UpstreamApi::parse(a.get_ref()).unwrap_or_else(|message| {
                check.error(a.span(), format!("{key}.api"), message);
                UpstreamApi::Chat
            }),
        };
        out.push(UpstreamConfig {
            name: name.unwrap_or_default(),
            url: u.url.get_ref().clone(),
            api_key,
            max_concurrent,
            api,
        });
    }
    out
}

pub(super) fn validate_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| {
        format!("`{url}` is not a URL ({e}); write it like \"http://127.0.0.1:8001\"")
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "`{url}`: credentials in a URL are refused (they would end up in logs); give the \
             key with `api_key`"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}` must not carry a query string"));
    }
    Ok(())
}

/// Everything but the upstreams, which the caller owns: a gateway file lists them with their
/// URLs, a scenario names them and the fleet gives them addresses at start. `names` are the
/// upstreams routes may use; the returned config has none yet.
pub(super) fn compile_table(
    check: &mut Check<'_>,
    t: &RawGatewayTable,
    names: &[&str],
    prefix: &str,
) -> Config {
    let timeouts = compile_timeouts(check, t.timeouts.as_ref(), Timeouts::default(), prefix);
    let mut routes = Vec::new();
    let mut models = HashSet::new();
    for (i, r) in t.routes.iter().enumerate() {
        let key = format!("{prefix}routes[{i}]");
        let Some(route) = compile_route(check, r, names, timeouts, &key) else {
            continue;
        };
        if models.insert(route.model.clone()) {
            routes.push(route);
        } else {
            check.error(
                r.get_ref().model.span(),
                format!("{key}.model"),
                format!("model `{}` is routed twice", route.model),
            );
        }
    }
    if t.routes.is_empty() {
        check.push(ConfigError::new(
            format!("{prefix}routes"),
            "no routes: add at least one, e.g. routes = [{ model = \"m\", targets = [\"a\"] }]",
        ));
    }
    let tiers = compile_tiers(check, &t.tiers, prefix);
    let admission = compile_admission(check, t.admission.as_ref(), prefix);
    let keys = compile_keys(check, &t.keys, &tiers, prefix);
    let retry = compile_retry(check, t.retry.as_ref(), prefix);
    let breaker = compile_breaker(check, t.breaker.as_ref(), prefix);
    let max_request_bytes = match &t.max_request_bytes {
        None => DEFAULT_MAX_REQUEST_BYTES,
        Some(v) => positive_int(check, v, &format!("{prefix}max_request_bytes"), 1 << 30)
            .map_or(DEFAULT_MAX_REQUEST_BYTES, |n| n as usize),
    };
    Config {
        upstreams: Vec::new(),
        keys,
        routes,
        timeouts,
        retry,
        breaker,
        max_request_bytes,
        tiers,
        admission,
    }
}

/// The built-in tiers with what the file says of them, then any other tier it names.
fn compile_tiers(
    check: &mut Check<'_>,
    raw: &std::collections::BTreeMap<Spanned<String>, RawTier>,
    prefix: &str,
) -> Vec<TierConfig> {
    let mut out = vec![
        TierConfig::builtin(DEFAULT_TIER),
        TierConfig::builtin(PRO_TIER),
    ];
    for (name, t) in raw {
        let key = format!("{prefix}tiers.{}", name.get_ref());
        let Some(valid) = check.name(name, &key) else {
            continue;
        };
        let at = match out.iter().position(|c| c.name == valid) {
            Some(at) => at,
            None => {
                out.push(TierConfig::builtin(&valid));
                out.len() - 1
            }
        };
        let tier = &mut out[at];
        let limit = |check: &mut Check<'_>, v: &Option<Spanned<i64>>, field: &str, d| match v {
            None => d,
            Some(v) => nonzero(check, v, &format!("{key}.{field}")),
        };
        tier.rpm = limit(check, &t.rpm, "rpm", tier.rpm);
        tier.tpm = limit(check, &t.tpm, "tpm", tier.tpm);
        tier.max_concurrent_per_key = limit(
            check,
            &t.max_concurrent_per_key,
            "max_concurrent_per_key",
            tier.max_concurrent_per_key,
        );
        tier.max_concurrent = limit(
            check,
            &t.max_concurrent,
            "max_concurrent",
            tier.max_concurrent,
        );
        if let Some(p) = &t.priority {
            tier.priority = non_negative_int(check, p, &format!("{key}.priority")).unwrap_or(0);
        }
        if let Some(q) = &t.queue {
            match non_negative_int(check, q, &format!("{key}.queue")) {
                Some(n) if n <= MAX_QUEUE => tier.queue = n,
                Some(n) => check.error(
                    q.span(),
                    format!("{key}.queue"),
                    format!("{n} waiting requests is not a short queue; allowed 0..={MAX_QUEUE}"),
                ),
                None => {}
            }
        }
        if let Some(v) = &t.queue_timeout
            && let Some(d) = check.positive_duration(v, &format!("{key}.queue_timeout"))
        {
            if d > MAX_QUEUE_WAIT {
                check.error(
                    v.span(),
                    format!("{key}.queue_timeout"),
                    "a queue wait over 10s is a timeout, not shedding; keep it short",
                );
            } else {
                tier.queue_timeout = d;
            }
        }
    }
    out
}

/// A queue is for smoothing bursts, not for holding a flood: the bound keeps memory flat.
const MAX_QUEUE: u32 = 10_000;
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(10);

fn compile_admission(
    check: &mut Check<'_>,
    raw: Option<&RawAdmission>,
    prefix: &str,
) -> AdmissionConfig {
    let d = AdmissionConfig::default();
    let Some(raw) = raw else { return d };
    let key = |name: &str| format!("{prefix}admission.{name}");
    let throttled_by_priority = match &raw.upstream_429 {
        None => true,
        Some(v) => match v.get_ref().as_str() {
            "priority" => true,
            "all" => false,
            other => {
                check.error(
                    v.span(),
                    key("upstream_429"),
                    format!(
                        "`{other}` is not a rule; use \"priority\" (the top tier gets the \
                         fallbacks first) or \"all\" (every tier fails over)"
                    ),
                );
                true
            }
        },
    };
    AdmissionConfig {
        throttled_by_priority,
        enabled: raw.enabled.unwrap_or(d.enabled),
        max_in_flight: raw
            .max_in_flight
            .as_ref()
            .and_then(|v| nonzero(check, v, &key("max_in_flight"))),
        upstream_max_concurrent: raw
            .upstream_max_concurrent
            .as_ref()
            .and_then(|v| nonzero(check, v, &key("upstream_max_concurrent"))),
        reserved: match &raw.reserved {
            None => d.reserved,
            Some(v) => match check.ratio(v, &key("reserved")) {
                Some(r) if r < 1.0 => r,
                Some(_) => {
                    check.error(
                        v.span(),
                        key("reserved"),
                        "reserving all capacity leaves lower tiers nothing; use less than 100%",
                    );
                    d.reserved
                }
                None => d.reserved,
            },
        },
    }
}

fn nonzero(check: &mut Check<'_>, v: &Spanned<i64>, key: &str) -> Option<NonZeroU32> {
    positive_int(check, v, key, u32::MAX as i64).and_then(|n| NonZeroU32::new(n as u32))
}

fn compile_route(
    check: &mut Check<'_>,
    r: &Spanned<RawRoute>,
    names: &[&str],
    defaults: Timeouts,
    key: &str,
) -> Option<RouteConfig> {
    let raw = r.get_ref();
    let model = raw.model.get_ref().trim().to_string();
    let mut ok = true;
    if model.is_empty() {
        check.error(
            raw.model.span(),
            format!("{key}.model"),
            "model must not be empty",
        );
        ok = false;
    }
    if raw.targets.is_empty() {
        check.error(
            r.span(),
            format!("{key}.targets"),
            format!("route `{model}` has no targets; add targets = [\"upstream-name\"]"),
        );
        ok = false;
    }
    let mut resolve = |list: &[Spanned<RawTarget>], field: &str, weighted: bool| {
        let mut out = Vec::new();
        for (j, t) in list.iter().enumerate() {
            let tkey = format!("{key}.{field}[{j}]");
            let rt = t.get_ref();
            if !names.contains(&rt.upstream.as_str()) {
                let named = Spanned::new(t.span(), rt.upstream.clone());
                check.unknown_name(&named, &tkey, "upstream", "[[upstreams]]", names);
                ok = false;
                continue;
            }
            let weight = match &rt.weight {
                None => NonZeroU32::MIN,
                Some(w) if !weighted => {
                    check.error(
                        w.span(),
                        format!("{tkey}.weight"),
                        "fallbacks are tried in order; a weight means nothing here",
                    );
                    ok = false;
                    NonZeroU32::MIN
                }
                Some(w) => check
                    .weight(w, &format!("{tkey}.weight"))
                    .unwrap_or_else(|| {
                        ok = false;
                        NonZeroU32::MIN
                    }),
            };
            out.push(Target {
                upstream: rt.upstream.clone(),
                weight,
                model: rt.model.clone().or_else(|| raw.upstream_model.clone()),
            });
        }
        out
    };
    let targets = resolve(&raw.targets, "targets", true);
    let fallbacks = resolve(&raw.fallbacks, "fallbacks", false);
    let timeouts = compile_timeouts(check, raw.timeouts.as_ref(), defaults, &format!("{key}."));
    ok.then_some(RouteConfig {
        model,
        targets,
        fallbacks,
        timeouts,
    })
}

fn compile_timeouts(
    check: &mut Check<'_>,
    raw: Option<&RawTimeouts>,
    defaults: Timeouts,
    prefix: &str,
) -> Timeouts {
    let Some(raw) = raw else { return defaults };
    let mut get = |v: &Option<Spanned<String>>, name: &str, default: Duration| match v {
        None => default,
        Some(v) => check
            .positive_duration(v, &format!("{prefix}timeouts.{name}"))
            .unwrap_or(default),
    };
    // A total shorter than first_byte is allowed: the deadline simply wins.
    Timeouts {
        connect: get(&raw.connect, "connect", defaults.connect),
        first_byte: get(&raw.first_byte, "first_byte", defaults.first_byte),
        total: get(&raw.total, "total", defaults.total),
    }
}

fn compile_keys(
    check: &mut Check<'_>,
    raw: &[Spanned<RawKey>],
    tiers: &[TierConfig],
    prefix: &str,
) -> Vec<KeyConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, k) in raw.iter().enumerate() {
        let key = format!("{prefix}keys[{i}]");
        let rk = k.get_ref();
        if let Some(old) = &rk.key_env {
            check.old_env_key(old, &format!("{key}.key_env"), "key");
        }
        let value = match &rk.key {
            Some(v) => check.secret(v, &format!("{key}.key")),
            None => {
                if rk.key_env.is_none() {
                    check.error(
                        k.span(),
                        key.clone(),
                        "needs `key`: the key itself or \"env:NAME\"",
                    );
                }
                None
            }
        };
        let limit = |check: &mut Check<'_>, v: &Option<Spanned<i64>>, name: &str| {
            v.as_ref()
                .and_then(|v| positive_int(check, v, &format!("{key}.{name}"), u32::MAX as i64))
                .and_then(|n| NonZeroU32::new(n as u32))
        };
        let rpm = limit(check, &rk.rpm, "rpm");
        let tpm = limit(check, &rk.tpm, "tpm");
        let max_concurrent = limit(check, &rk.max_concurrent, "max_concurrent");
        let tier = match &rk.tier {
            None => tiers.iter().find(|t| t.name == DEFAULT_TIER),
            Some(name) => {
                let found = tiers.iter().find(|t| &t.name == name.get_ref());
                if found.is_none() {
                    let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
                    check.unknown_name(
                        name,
                        &format!("{key}.tier"),
                        "tier",
                        "[tiers.NAME]",
                        &names,
                    );
                }
                found
            }
        };
        let Some(value) = value else { continue };
        if !seen.insert(value.clone()) {
            // Do not echo the key itself: it is a secret.
            check.error(k.span(), key, "this key is configured twice");
            continue;
        }
        let Some(tier) = tier else { continue };
        out.push(KeyConfig {
            key: value,
            tier: tier.name.clone(),
            rpm: rpm.or(tier.rpm),
            tpm: tpm.or(tier.tpm),
            max_concurrent: max_concurrent.or(tier.max_concurrent_per_key),
        });
    }
    out
}

fn compile_retry(check: &mut Check<'_>, raw: Option<&RawRetry>, prefix: &str) -> RetryConfig {
    let d = RetryConfig::default();
    let Some(raw) = raw else { return d };
    let key = |name: &str| format!("{prefix}retry.{name}");
    let dur = |check: &mut Check<'_>, v: &Option<Spanned<String>>, name: &str, default| match v {
        None => default,
        Some(v) => check.duration(v, &key(name)).unwrap_or(default),
    };
    let backoff_base = dur(check, &raw.backoff_base, "backoff_base", d.backoff_base);
    let backoff_max = dur(check, &raw.backoff_max, "backoff_max", d.backoff_max);
    if let Some(v) = &raw.backoff_max
        && backoff_max < backoff_base
    {
        check.error(
            v.span(),
            key("backoff_max"),
            "backoff_max must be >= backoff_base",
        );
    }
    let budget_window = match &raw.budget_window {
        None => d.budget_window,
        Some(v) => check
            .positive_duration(v, &key("budget_window"))
            .unwrap_or(d.budget_window),
    };
    let retry_on = raw.retry_on.as_ref().map(|list| {
        list.iter()
            .filter_map(|s| {
                let n = *s.get_ref();
                if (400..=599).contains(&n) {
                    Some(n as u16)
                } else {
                    check.error(
                        s.span(),
                        key("retry_on"),
                        format!("{n} is not an error status; use 4xx/5xx codes like 429 or 503"),
                    );
                    None
                }
            })
            .collect()
    });
    RetryConfig {
        max_attempts: raw
            .max_attempts
            .as_ref()
            .and_then(|v| positive_int(check, v, &key("max_attempts"), 20))
            .map_or(d.max_attempts, |n| n as u32),
        backoff_base,
        backoff_max,
        budget: raw
            .budget
            .as_ref()
            .and_then(|v| check.ratio(v, &key("budget")))
            .unwrap_or(d.budget),
        budget_window,
        budget_min: match &raw.budget_min {
            None => d.budget_min,
            Some(v) => non_negative_int(check, v, &key("budget_min")).unwrap_or(d.budget_min),
        },
        retry_on,
    }
}

fn compile_breaker(check: &mut Check<'_>, raw: Option<&RawBreaker>, prefix: &str) -> BreakerConfig {
    let d = BreakerConfig::default();
    let Some(raw) = raw else { return d };
    let key = |name: &str| format!("{prefix}breaker.{name}");
    let int = |check: &mut Check<'_>, v: &Option<Spanned<i64>>, name: &str, default: u32| {
        v.as_ref()
            .and_then(|v| positive_int(check, v, &key(name), 1_000_000))
            .map_or(default, |n| n as u32)
    };
    let dur = |check: &mut Check<'_>, v: &Option<Spanned<String>>, name: &str, default| match v {
        None => default,
        Some(v) => check.positive_duration(v, &key(name)).unwrap_or(default),
    };
    BreakerConfig {
        enabled: raw.enabled.unwrap_or(true),
        consecutive_failures: int(
            check,
            &raw.consecutive_failures,
            "consecutive_failures",
            d.consecutive_failures,
        ),
        error_rate: raw
            .error_rate
            .as_ref()
            .and_then(|v| check.ratio(v, &key("error_rate")))
            .unwrap_or(d.error_rate),
        window: dur(check, &raw.window, "window", d.window),
        min_requests: int(check, &raw.min_requests, "min_requests", d.min_requests),
        cooldown: dur(check, &raw.cooldown, "cooldown", d.cooldown),
        half_open_probes: int(
            check,
            &raw.half_open_probes,
            "half_open_probes",
            d.half_open_probes,
        ),
    }
}

fn positive_int(check: &mut Check<'_>, v: &Spanned<i64>, key: &str, max: i64) -> Option<i64> {
    let n = *v.get_ref();
    if (1..=max).contains(&n) {
        Some(n)
    } else {
        check.error(
            v.span(),
            key,
            format!("{n} is out of range; allowed 1..={max}"),
        );
        None
    }
}

fn non_negative_int(check: &mut Check<'_>, v: &Spanned<i64>, key: &str) -> Option<u32> {
    let n = *v.get_ref();
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            check.error(v.span(), key, format!("{n} must be a whole number >= 0"));
            None
        }
    }
}
