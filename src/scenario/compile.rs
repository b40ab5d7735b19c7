//! Turning a raw scenario into a typed `Scenario`: every rule about names, targets, upstreams
//! and request classes, collecting every located error in one pass.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::model::{
    Alternative, ProxyPrice, RequestClass, Scenario, Target, Upstream, UpstreamSource,
};
use super::raw::{RawCost, RawRequest, RawScenario, RawUpstream};
use super::trace::ClassRef;
use super::{budget, capacity, faults, load as load_section, observe, probe, sla, tls, workload};
use crate::api::Api;
use crate::config::{Check, ConfigError, ConfigErrors, MAX_CONFIG_BYTES, Source, did_you_mean};
use crate::gateway::EmbeddedConfig;
use crate::mock::Profile;
use crate::openai::Message;

/// Limits that catch typos and runaway generated files, far above any real scenario.
const MAX_UPSTREAMS: usize = 100;
const MAX_CLASSES: usize = 1000;

/// Reads, parses and validates a scenario file, with the profiles it names: the one parse of
/// the file a run makes.
pub fn load(path: &Path) -> Result<Scenario, ConfigErrors> {
    let src = Source::read(path)?;
    compile(src)
}

/// Parses and validates scenario text; `path` names it in messages and anchors relative paths.
pub fn load_str(
    path: impl Into<PathBuf>,
    text: impl Into<String>,
) -> Result<Scenario, ConfigErrors> {
    let src = Source::new(path, text);
    if src.text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::file(
            &src.path,
            format!(
                "text is {} bytes; configuration files are limited to {MAX_CONFIG_BYTES} bytes",
                src.text.len()
            ),
        )
        .into());
    }
    compile(src)
}

fn compile(src: Source) -> Result<Scenario, ConfigErrors> {
    let raw: RawScenario = src.parse_toml()?;
    let mut c = Check::new(&src);

    let name = match &raw.name {
        Some(n) => c.name(n, "name").unwrap_or_default(),
        None => src
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into()),
    };
    let upstreams = compile_upstreams(&mut c, &raw.upstreams);
    let upstream_names: Vec<&str> = raw
        .upstreams
        .iter()
        .map(|u| u.get_ref().name.get_ref().as_str())
        .collect();
    let target = compile_target(&mut c, &raw, &upstream_names);
    let mut requests = compile_requests(&mut c, &raw, &upstream_names);
    assign_tiers(&mut c, &raw, &target, &mut requests);
    let mut tier_names: Vec<&str> = Vec::new();
    for t in requests.iter().filter_map(|r| r.tier.as_deref()) {
        if !tier_names.contains(&t) {
            tier_names.push(t);
        }
    }
    let class_refs: Vec<ClassRef<'_>> = raw
        .classes()
        .map(|r| ClassRef {
            name: r.get_ref().name.get_ref(),
            model: r.get_ref().model.get_ref(),
        })
        .collect();
    let plan = load_section::compile(&mut c, raw.load.as_ref(), &class_refs);
    // Raw names, so a class with a bad weight still counts as defined for `[sla.classes]`.
    let mut class_names: Vec<&str> = Vec::new();
    for r in raw.classes() {
        let n = r.get_ref().name.get_ref().as_str();
        if !class_names.contains(&n) {
            class_names.push(n);
        }
    }
    let total = plan.as_ref().map(|p| p.total_duration());
    let faults = faults::compile(&mut c, &raw.faults, &upstream_names, total);
    let sla = raw
        .sla
        .as_ref()
        .map(|s| sla::compile(&mut c, s, &class_names, &tier_names))
        .unwrap_or_default();

    let compare_to = compare_to(&mut c, raw.cost.as_ref());
    let capacity = capacity::compile(&mut c, raw.capacity.as_ref());
    let tls = tls::compile(&mut c, raw.tls.as_ref());
    let budget = budget::compile(&mut c, raw.budget.as_ref(), &upstreams);
    let probe = probe::compile(&mut c, &raw);
    let observe = observe::compile(&mut c, raw.observe.as_ref());
    let Some(load) = plan else {
        return finish(c, None);
    };
    check_stage_weights(&mut c, &raw, &requests, load.stages.len());
    check_baseline(&mut c, &raw, &target, &upstream_names);
    let scenario = Scenario {
        name,
        description: raw.description.clone(),
        seed: raw.seed.unwrap_or(1),
        target,
        upstreams,
        load,
        requests,
        faults,
        sla,
        compare_to,
        capacity,
        tls,
        budget,
        probe,
        observe,
    };
    finish(c, Some(scenario))
}

/// `[load] baseline = "direct"` needs a gateway to compare against, and for each class an
/// upstream to send its share to: its `primary`, or the only upstream there is.
fn check_baseline(c: &mut Check<'_>, raw: &RawScenario, target: &Target, upstreams: &[&str]) {
    let Some(baseline) = raw
        .load
        .as_ref()
        .and_then(|l| l.get_ref().baseline.as_ref())
    else {
        overhead_needs_baseline(c, raw);
        return;
    };
    if *target == Target::Direct && raw.target.is_none() {
        c.error(
            baseline.span(),
            "load.baseline",
            "the run already goes straight to the upstreams, so there is no gateway to compare \
             against; set [gateway] or [target] url",
        );
        return;
    }
    for (i, class) in raw.classes().enumerate() {
        let r = class.get_ref();
        if r.primary.is_some() || upstreams.len() == 1 {
            continue;
        }
        let why = if upstreams.is_empty() {
            "there are no [[upstreams]] to send it to".to_string()
        } else {
            "gauntlet cannot tell which upstream serves it; set `primary`".to_string()
        };
        c.error(
            class.span(),
            format!("requests[{i}].primary"),
            format!(
                "`[load] baseline = \"direct\"` sends a share of class `{}` straight to its \
                 primary upstream, but {why}",
                r.name.get_ref()
            ),
        );
    }
}

/// Without a baseline the overhead is never measured, and its check could never be decided.
fn overhead_needs_baseline(c: &mut Check<'_>, raw: &RawScenario) {
    let Some(sla) = &raw.sla else { return };
    let tables = std::iter::once(("sla".to_string(), sla.max_overhead_p99.as_ref())).chain(
        sla.classes.iter().map(|(name, t)| {
            (
                format!("sla.classes.{}", name.get_ref()),
                t.max_overhead_p99.as_ref(),
            )
        }),
    );
    for (key, value) in tables {
        if let Some(v) = value {
            c.error(
                v.span(),
                format!("{key}.max_overhead_p99"),
                "the overhead is the gateway's latency minus that of requests sent direct; set \
                 `[load] baseline = \"direct\"` to send some",
            );
        }
    }
}

/// `[cost] compare_to`: named once each, prices finite and not negative.
fn compare_to(c: &mut Check<'_>, raw: Option<&RawCost>) -> Vec<Alternative> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut out: Vec<Alternative> = Vec::new();
    // Every name seen, valid or not: a duplicate of a refused entry is still a duplicate.
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, a) in raw.compare_to.iter().enumerate() {
        let key = format!("cost.compare_to[{i}]");
        let span = a.span();
        let a = a.get_ref();
        let mut ok = true;
        if a.name.trim().is_empty() {
            c.error(
                span.clone(),
                format!("{key}.name"),
                "name the alternative, e.g. \"gpt-4o direct\"",
            );
            ok = false;
        } else if !seen.insert(a.name.as_str()) {
            c.error(
                span.clone(),
                format!("{key}.name"),
                format!("`{}` is named twice", a.name),
            );
            ok = false;
        }
        for (field, v) in [
            ("input_price_per_m", a.input_price_per_m),
            ("output_price_per_m", a.output_price_per_m),
            (
                "cached_input_price_per_m",
                a.cached_input_price_per_m.unwrap_or(0.0),
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                c.error(
                    span.clone(),
                    format!("{key}.{field}"),
                    format!("{v} is not a price: US dollars per million tokens, 0 or more"),
                );
                ok = false;
            }
        }
        if ok {
            out.push(Alternative {
                name: a.name.clone(),
                input_price_per_m: a.input_price_per_m,
                output_price_per_m: a.output_price_per_m,
                cached_input_price_per_m: a.cached_input_price_per_m,
            });
        }
    }
    out
}

/// Errors come back in file order, whichever rule found them.
fn finish(c: Check<'_>, scenario: Option<Scenario>) -> Result<Scenario, ConfigErrors> {
    match c.finish(()) {
        Err(mut e) => {
            e.0.sort_by_key(|e| e.location.as_ref().map(|l| (l.line, l.col)));
            Err(e)
        }
        // Every rule that declines a value records why, so this only guards against silence.
        Ok(()) => scenario
            .ok_or_else(|| ConfigError::new("load", "the scenario has no valid load").into()),
    }
}

/// An `http://` or `https://` URL with a host.
fn check_url(c: &mut Check<'_>, v: &Spanned<String>, key: &str) -> Option<String> {
    let s = v.get_ref().trim();
    let parsed = s.parse::<http::Uri>().ok().filter(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    });
    if parsed.is_none() {
        c.error(
            v.span(),
            key,
            format!("{s:?} is not an http(s) URL; write it like \"http://127.0.0.1:4000\""),
        );
        return None;
    }
    if parsed
        .as_ref()
        .and_then(|u| u.authority())
        .is_some_and(|a| a.as_str().contains('@'))
    {
        c.error(
            v.span(),
            key,
            "credentials in a URL are refused (they would end up in logs and reports); \
             give keys with `api_key`",
        );
        return None;
    }
    Some(s.trim_end_matches('/').to_string())
}

fn compile_target(c: &mut Check<'_>, raw: &RawScenario, upstreams: &[&str]) -> Target {
    if let Some(t) = &raw.target {
        if let Some(g) = &raw.gateway {
            c.error(
                g.span(),
                "gateway",
                "both [target] url and [gateway] are set; keep [gateway] to test the embedded \
                 gateway, or [target] to test one running elsewhere",
            );
        }
        return check_url(c, &t.url, "target.url").map_or(Target::Direct, Target::Url);
    }
    let target = match &raw.gateway {
        Some(table) => Target::EmbeddedGateway(Box::new(EmbeddedConfig::compile(
            c,
            table.get_ref(),
            upstreams,
        ))),
        None => Target::Direct,
    };
    if raw.upstreams.is_empty() {
        c.error(
            0..0,
            "upstreams",
            "nothing to send requests to: add [[upstreams]] (mock providers), or [target] url \
             for a gateway running elsewhere",
        );
    }
    target
}

/// A proxied provider's prices: both or neither, each a finite amount of zero or more.
fn proxy_price(
    c: &mut Check<'_>,
    u: &RawUpstream,
    key: &dyn Fn(&str) -> String,
) -> Option<ProxyPrice> {
    let mut read = |v: &Option<Spanned<f64>>, name: &str| {
        let v = v.as_ref()?;
        if v.get_ref().is_finite() && *v.get_ref() >= 0.0 {
            Some(*v.get_ref())
        } else {
            c.error(
                v.span(),
                key(name),
                format!(
                    "{} is not a price; US dollars per 1M tokens, 0 or more",
                    v.get_ref()
                ),
            );
            None
        }
    };
    let input = read(&u.input_price_per_m, "input_price_per_m");
    let output = read(&u.output_price_per_m, "output_price_per_m");
    match (input, output) {
        (Some(input_per_m), Some(output_per_m)) => Some(ProxyPrice {
            input_per_m,
            output_per_m,
        }),
        (None, None) => None,
        _ => {
            let at = u
                .input_price_per_m
                .as_ref()
                .or(u.output_price_per_m.as_ref())
                .map_or(0..0, |v| v.span());
            c.error(
                at,
                key("input_price_per_m"),
                "give both `input_price_per_m` and `output_price_per_m`",
            );
            None
        }
    }
}

fn compile_upstreams(c: &mut Check<'_>, raw: &[Spanned<RawUpstream>]) -> Vec<Upstream> {
    if raw.len() > MAX_UPSTREAMS {
        c.error(
            raw[MAX_UPSTREAMS].span(),
            "upstreams",
            format!(
                "{} upstreams; at most {MAX_UPSTREAMS} are supported",
                raw.len()
            ),
        );
        return Vec::new();
    }
    let dir = c.src.dir();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let u = spanned.get_ref();
        let key = |k: &str| format!("upstreams[{i}].{k}");
        let name = c.name(&u.name, &key("name"));
        if let Some(n) = &name
            && !seen.insert(n.clone())
        {
            c.error(
                u.name.span(),
                key("name"),
                format!("duplicate upstream name `{n}`; each upstream needs its own name"),
            );
        }
        if let Some(k) = u.api_key.as_ref().filter(|_| u.proxy_to.is_none()) {
            c.error(
                k.span(),
                key("api_key"),
                "only a proxied provider (`proxy_to`) takes a key; a mock needs none",
            );
        }
        let source = match (&u.profile, &u.url) {
            _ if u.proxy_to.is_some() && (u.profile.is_some() || u.url.is_some()) => {
                let at = u.proxy_to.as_ref().map_or(0..0, |p| p.span());
                c.error(
                    at,
                    key("proxy_to"),
                    "set one of `profile` (a mock), `url` (a mock already running) or \
                     `proxy_to` (a real provider behind a fault proxy)",
                );
                None
            }
            (None, None) if u.proxy_to.is_some() => {
                let url = u
                    .proxy_to
                    .as_ref()
                    .and_then(|p| check_url(c, p, &key("proxy_to")));
                let api_key = u
                    .api_key
                    .as_ref()
                    .and_then(|k| c.secret(k, &key("api_key")));
                let price = proxy_price(c, u, &key);
                url.map(|url| UpstreamSource::Proxy {
                    url,
                    api_key,
                    price,
                })
            }
            (Some(_), Some(url)) => {
                c.error(
                    url.span(),
                    key("url"),
                    "set either `profile` (gauntlet starts the mock) or `url` (a mock already \
                     running), not both",
                );
                None
            }
            (None, None) => {
                c.error(
                    spanned.span(),
                    format!("upstreams[{i}]"),
                    "needs `profile = \"path/to/profile.toml\"`, `url = \"http://...\"` or \
                     `proxy_to = \"https://...\"`",
                );
                None
            }
            (Some(p), None) => {
                if let Some(t) = &u.admin_token {
                    c.error(
                        t.span(),
                        key("admin_token"),
                        "only an upstream given by `url` takes an admin_token; gauntlet \
                         controls the mocks it starts itself",
                    );
                }
                load_profile(c, &dir, p, &key("profile"))
                    .map(|profile| UpstreamSource::Profile(Box::new(profile)))
            }
            (None, Some(url)) => {
                let admin_token = u
                    .admin_token
                    .as_ref()
                    .and_then(|t| c.secret(t, &key("admin_token")));
                check_url(c, url, &key("url")).map(|url| UpstreamSource::Url { url, admin_token })
            }
        };
        let api = match &u.api {
            None => Some(Api::Chat),
            Some(a) => match crate::gateway::UpstreamApi::parse(a.get_ref()) {
                Ok(api) => Some(api.api()),
                Err(message) => {
                    c.error(a.span(), key("api"), message);
                    None
                }
            },
        };
        if let (Some(name), Some(source), Some(api)) = (name, source, api) {
            out.push(Upstream { name, source, api });
        }
    }
    out
}

/// Reads and validates the profile a `[[upstreams]]` entry names; the run starts the mock with
/// this very value, so the file is read once.
fn load_profile(c: &mut Check<'_>, dir: &Path, p: &Spanned<String>, key: &str) -> Option<Profile> {
    if p.get_ref().trim().is_empty() {
        c.error(
            p.span(),
            key,
            "is empty; give the path of a profile .toml file",
        );
        return None;
    }
    let resolved = normalize(&dir.join(p.get_ref()));
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_file() => match Profile::load(&resolved) {
            Ok(profile) => Some(profile),
            Err(errors) => {
                // The profile's own errors point into the profile file; say where it was named.
                c.error(
                    p.span(),
                    key,
                    format!("profile {} is invalid:", resolved.display()),
                );
                errors.0.into_iter().for_each(|e| c.push(e));
                None
            }
        },
        Ok(_) => {
            c.error(
                p.span(),
                key,
                format!("{} is not a file", resolved.display()),
            );
            None
        }
        Err(e) => {
            c.error(
                p.span(),
                key,
                format!(
                    "cannot read profile {} ({e}); paths are relative to the scenario's folder",
                    resolved.display()
                ),
            );
            None
        }
    }
}

/// Folds `a/../b` into `b` without touching the file system, so messages show a plain path.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn compile_requests(c: &mut Check<'_>, raw: &RawScenario, upstreams: &[&str]) -> Vec<RequestClass> {
    let Some(requests) = &raw.requests else {
        c.error(
            0..0,
            "requests",
            "empty mix: add at least one [[requests]] class (name, model, prompt)",
        );
        return Vec::new();
    };
    let list = requests.get_ref();
    if list.is_empty() {
        c.error(
            requests.span(),
            "requests",
            "empty mix: add at least one [[requests]] class (name, model, prompt)",
        );
        return Vec::new();
    }
    if list.len() > MAX_CLASSES {
        c.error(
            list[MAX_CLASSES].span(),
            "requests",
            format!(
                "{} request classes; at most {MAX_CLASSES} are supported",
                list.len()
            ),
        );
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        if let Some(class) = compile_request(c, i, r, upstreams, &mut seen) {
            out.push(class);
        }
    }
    out
}

/// `api`, and what the Messages API needs of a class (a token budget, and no OpenAI-only
/// request fields gauntlet does not translate) and what embeddings cannot be (a stream, a
/// conversation, a generation budget, tools).
fn compile_api(
    c: &mut Check<'_>,
    i: usize,
    r: &RawRequest,
    compiled: Option<&workload::Compiled>,
) -> Option<Api> {
    let key = |k: &str| format!("requests[{i}].{k}");
    let Some(name) = &r.api else {
        return Some(Api::Chat);
    };
    let Some(api) = Api::from_name(name.get_ref()) else {
        c.error(
            name.span(),
            key("api"),
            format!(
                "`{}` is not an API gauntlet sends; use one of: {}",
                name.get_ref(),
                Api::NAMES.join(", ")
            ),
        );
        return None;
    };
    if api == Api::Messages {
        let budget =
            compiled.is_some_and(|w| w.max_tokens.is_some() || w.workload.max_tokens.is_some());
        if compiled.is_some() && !budget {
            c.error(
                name.span(),
                key("api"),
                "Anthropic's Messages API requires `max_tokens` on every request; set \
                 `max_tokens` in this class",
            );
        }
        for (field, span) in [
            ("tools", r.tools.as_ref().map(|t| t.span())),
            ("tool_choice", r.tool_choice.as_ref().map(|t| t.span())),
            (
                "response_format",
                r.response_format.as_ref().map(|t| t.span()),
            ),
        ] {
            if let Some(span) = span {
                c.error(
                    span,
                    key(field),
                    format!(
                        "is OpenAI's shape and is not translated to the Messages API; put \
                         Anthropic's own fields in `extra_body`, or drop `{field}`"
                    ),
                );
            }
        }
    }
    if api == Api::Embeddings {
        if r.stream == Some(true) {
            c.error(
                name.span(),
                key("stream"),
                "embeddings are answered whole, never streamed; drop `stream = true` from \
                 this class",
            );
        }
        let fields = [
            ("session", r.session.as_ref().map(|t| t.span())),
            ("max_tokens", r.max_tokens.as_ref().map(|t| t.span())),
            ("tools", r.tools.as_ref().map(|t| t.span())),
            ("tool_choice", r.tool_choice.as_ref().map(|t| t.span())),
            (
                "response_format",
                r.response_format.as_ref().map(|t| t.span()),
            ),
        ];
        for (field, span) in fields {
            if let Some(span) = span {
                c.error(
                    span,
                    key(field),
                    format!(
                        "means nothing to the embeddings API (it generates no text); drop \
                         `{field}` from this class"
                    ),
                );
            }
        }
    }
    Some(api)
}

fn compile_request(
    c: &mut Check<'_>,
    i: usize,
    spanned: &Spanned<RawRequest>,
    upstreams: &[&str],
    seen: &mut HashSet<String>,
) -> Option<RequestClass> {
    let r = spanned.get_ref();
    let key = |k: &str| format!("requests[{i}].{k}");
    let name = c.name(&r.name, &key("name"));
    if let Some(n) = &name
        && !seen.insert(n.clone())
    {
        c.error(
            r.name.span(),
            key("name"),
            format!("duplicate class name `{n}`; each [[requests]] class needs its own name"),
        );
    }
    let weight = match &r.weight {
        Some(w) => c.weight(w, &key("weight")),
        None => Some(NonZeroU32::MIN),
    };
    let model = r.model.get_ref().trim().to_string();
    if model.is_empty() {
        c.error(
            r.model.span(),
            key("model"),
            "is empty; name the model to ask for",
        );
    }
    let dir = c.src.dir();
    let dataset = r
        .dataset
        .as_ref()
        .map(|d| normalize(&dir.join(d.get_ref())));
    let compiled = workload::compile(c, i, r, dataset.as_deref());
    let own_prompt = r.dataset.is_none() && r.prompt_tokens.is_none();
    let messages = if own_prompt || r.messages.is_some() {
        compile_messages(c, i, spanned)
    } else {
        Some(Vec::new())
    };
    let api_key = r.api_key.as_ref().map(|k| c.secret(k, &key("api_key")));
    let headers = compile_headers(c, i, r);
    let api = compile_api(c, i, r, compiled.as_ref());
    let primary = match &r.primary {
        Some(p) if upstreams.contains(&p.get_ref().as_str()) => Some(p.get_ref().clone()),
        Some(p) => {
            c.unknown_name(p, &key("primary"), "upstream", "[[upstreams]]", upstreams);
            None
        }
        None => None,
    };
    Some(RequestClass {
        name: name?,
        weight: weight?,
        model,
        messages: messages?,
        max_tokens: compiled.as_ref().and_then(|w| w.max_tokens),
        workload: compiled?.workload,
        stream: r.stream.unwrap_or(false),
        api: api?,
        api_key: match api_key {
            Some(resolved) => Some(resolved?),
            None => None,
        },
        headers,
        primary,
        tier: r.tier.as_ref().and_then(|t| c.name(t, &key("tier"))),
        stage_weights: r.stage_weights.as_ref().map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|w| match u32::try_from(*w.get_ref()) {
                    Ok(n) if n <= MAX_STAGE_WEIGHT => Some(n),
                    _ => {
                        c.error(
                            w.span(),
                            key("stage_weights"),
                            format!(
                                "{} is not a weight; use a whole number 0..={MAX_STAGE_WEIGHT}",
                                w.get_ref()
                            ),
                        );
                        None
                    }
                })
                .collect()
        }),
    })
}

/// A weight per stage can be a million; more is a typo.
const MAX_STAGE_WEIGHT: u32 = 1_000_000;

/// `stage_weights` lists one weight per stage, and every stage sends some class.
fn check_stage_weights(
    c: &mut Check<'_>,
    raw: &RawScenario,
    requests: &[RequestClass],
    stages: usize,
) {
    if requests.iter().all(|r| r.stage_weights.is_none()) {
        return;
    }
    let declared: Vec<&Spanned<RawRequest>> = raw.classes().collect();
    for (i, r) in declared.iter().enumerate() {
        if let Some(list) = &r.get_ref().stage_weights
            && list.get_ref().len() != stages
        {
            c.error(
                list.span(),
                format!("requests[{i}].stage_weights"),
                format!(
                    "{} weights for {stages} stages; give one weight per [load] stage",
                    list.get_ref().len()
                ),
            );
            return;
        }
    }
    for s in 0..stages {
        let any = requests.iter().any(|r| match &r.stage_weights {
            Some(w) => w.get(s).is_some_and(|&w| w > 0),
            None => true,
        });
        if !any {
            c.error(
                0..0,
                "requests",
                format!("stage {s} of [load] sends no class: every stage_weights entry is 0"),
            );
        }
    }
}

/// With an embedded gateway, a class belongs to the tier of its key as the gateway's keys
/// say; a class that declares another tier is contradicting the gateway, which is refused.
fn assign_tiers(
    c: &mut Check<'_>,
    raw: &RawScenario,
    target: &Target,
    requests: &mut [RequestClass],
) {
    let Target::EmbeddedGateway(gw) = target else {
        return;
    };
    let declared: Vec<&Spanned<RawRequest>> = raw.classes().collect();
    for class in requests.iter_mut() {
        let from_key = class
            .api_key
            .as_ref()
            .and_then(|k| gw.tier_of(k.expose()))
            .map(str::to_string);
        match (&class.tier, from_key) {
            (Some(said), Some(is)) if *said != is => {
                let at = declared
                    .iter()
                    .position(|r| r.get_ref().name.get_ref() == &class.name);
                if let Some((i, t)) =
                    at.and_then(|i| declared[i].get_ref().tier.as_ref().map(|t| (i, t)))
                {
                    c.error(
                        t.span(),
                        format!("requests[{i}].tier"),
                        format!(
                            "the embedded gateway's key of this class is of tier `{is}`, not \
                             `{said}`; drop `tier` here (it is read from [gateway] keys)"
                        ),
                    );
                }
            }
            (_, Some(is)) => class.tier = Some(is),
            (_, None) => {}
        }
    }
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

fn compile_messages(
    c: &mut Check<'_>,
    i: usize,
    spanned: &Spanned<RawRequest>,
) -> Option<Vec<Message>> {
    let r = spanned.get_ref();
    match (&r.messages, &r.prompt) {
        (Some(m), Some(_)) => {
            c.error(
                m.span(),
                format!("requests[{i}].messages"),
                "set either `messages` or `prompt` (one user message), not both",
            );
            None
        }
        (None, None) => {
            c.error(
                spanned.span(),
                format!("requests[{i}]"),
                "needs `prompt = \"...\"` or `messages = [{ role = \"user\", content = \"...\" }]`",
            );
            None
        }
        (None, Some(p)) => Some(vec![Message::new("user", p.get_ref().clone())]),
        (Some(m), None) => {
            if m.get_ref().is_empty() {
                c.error(
                    m.span(),
                    format!("requests[{i}].messages"),
                    "is empty; give at least one message",
                );
                return None;
            }
            let mut out = Vec::new();
            for (j, msg) in m.get_ref().iter().enumerate() {
                let role = &msg.get_ref().role;
                if ROLES.contains(&role.get_ref().as_str()) {
                    out.push(Message::new(
                        role.get_ref().clone(),
                        msg.get_ref().content.clone(),
                    ));
                } else {
                    let hint = did_you_mean(role.get_ref(), ROLES)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    c.error(
                        role.span(),
                        format!("requests[{i}].messages[{j}].role"),
                        format!(
                            "unknown role {:?}{hint}; use one of {}",
                            role.get_ref(),
                            ROLES.join(", ")
                        ),
                    );
                }
            }
            (out.len() == m.get_ref().len()).then_some(out)
        }
    }
}

/// Headers the client sets itself; letting a scenario override them would corrupt requests.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

fn compile_headers(c: &mut Check<'_>, i: usize, r: &RawRequest) -> Vec<(String, String)> {
    let Some(h) = &r.headers else {
        return Vec::new();
    };
    let key = format!("requests[{i}].headers");
    let mut out = Vec::new();
    for (name, value) in h.get_ref() {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.error(
                h.span(),
                &key,
                format!("{name:?} is not a valid header name"),
            );
        } else if lower == "authorization" {
            c.error(
                h.span(),
                &key,
                "set the bearer key with `api_key` (it is kept out of reports), not an \
                 Authorization header",
            );
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            c.error(
                h.span(),
                &key,
                format!("`{name}` is set by gauntlet's client and cannot be overridden"),
            );
        } else if http::HeaderValue::from_str(value).is_err() {
            c.error(
                h.span(),
                &key,
                format!("the value of `{name}` is not a valid header value (printable ASCII)"),
            );
        } else {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_parent_dirs() {
        assert_eq!(
            normalize(Path::new("scenarios/../mock-upstreams/a.toml")),
            PathBuf::from("mock-upstreams/a.toml")
        );
        assert_eq!(
            normalize(Path::new("../x/./y.toml")),
            PathBuf::from("../x/y.toml")
        );
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn oversized_text_is_refused() {
        let text = "#".repeat(MAX_CONFIG_BYTES as usize + 1);
        let e = load_str("big.toml", text).unwrap_err();
        assert!(e.to_string().contains("limited to"), "{e}");
    }
}
