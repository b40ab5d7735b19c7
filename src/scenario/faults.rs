//! Compiling `[[faults]]` into `ScheduledFault`s: the schedule (at, duration, every, count) and
//! the mock fault itself, checked with the mock's own rules so both agree on what is valid.

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::model::ScheduledFault;
use super::raw::RawScheduledFault;
use crate::config::Check;
use crate::mock::RawFault;

const MAX_FAULTS: usize = 1000;
const MAX_REPEATS: i64 = 10_000;

/// `total` is the run's length when `[load]` compiled; faults must end within it.
pub fn compile(
    c: &mut Check<'_>,
    raw: &[Spanned<RawScheduledFault>],
    upstreams: &[&str],
    total: Option<Duration>,
) -> Vec<ScheduledFault> {
    if raw.len() > MAX_FAULTS {
        c.error(
            raw[MAX_FAULTS].span(),
            "faults",
            format!("{} faults; at most {MAX_FAULTS} are supported", raw.len()),
        );
        return Vec::new();
    }
    raw.iter()
        .enumerate()
        .filter_map(|(i, f)| fault(c, i, f, upstreams, total))
        .collect()
}

fn fault(
    c: &mut Check<'_>,
    i: usize,
    spanned: &Spanned<RawScheduledFault>,
    upstreams: &[&str],
    total: Option<Duration>,
) -> Option<ScheduledFault> {
    let f = spanned.get_ref();
    let key = |k: &str| format!("faults[{i}].{k}");
    let upstream = f.upstream.get_ref();
    let known = upstreams.contains(&upstream.as_str());
    if !known {
        c.unknown_name(
            &f.upstream,
            &key("upstream"),
            "upstream",
            "[[upstreams]]",
            upstreams,
        );
    }
    let at = c.duration(&f.at, &key("at"));
    let duration = c.positive_duration(&f.duration, &key("duration"));
    let every = f
        .every
        .as_ref()
        .map(|e| c.positive_duration(e, &key("every")));
    let count = match &f.count {
        Some(n) if (1..=MAX_REPEATS).contains(n.get_ref()) => {
            u32::try_from(*n.get_ref()).ok().and_then(NonZeroU32::new)
        }
        Some(n) => {
            c.error(
                n.span(),
                key("count"),
                format!("{} is not allowed; use 1 to {MAX_REPEATS}", n.get_ref()),
            );
            None
        }
        None => Some(NonZeroU32::MIN),
    };
    let spec = compile_spec(c, i, spanned);

    let (at, duration, count) = (at?, duration?, count?);
    let every = match (every, &f.every) {
        (Some(e), Some(raw_every)) => Some((e?, raw_every)),
        _ => None,
    };
    match every {
        Some((e, raw_every)) if count.get() > 1 && e < duration => {
            c.error(
                raw_every.span(),
                key("every"),
                format!(
                    "repeats every {} but each fault lasts {}; `every` must be at least \
                     `duration` so windows don't overlap",
                    raw_every.get_ref(),
                    f.duration.get_ref()
                ),
            );
            return None;
        }
        Some((_, raw_every)) if count.get() == 1 => {
            c.error(
                raw_every.span(),
                key("every"),
                "`every` repeats a fault, but `count` is 1; set `count` to the number of times",
            );
            return None;
        }
        None if count.get() > 1 => {
            let span = f.count.as_ref().map_or(spanned.span(), Spanned::span);
            c.error(
                span,
                key("count"),
                format!("a fault repeated {count} times needs `every` (the time between starts)"),
            );
            return None;
        }
        _ => {}
    }
    let scheduled = ScheduledFault {
        upstream: upstream.clone(),
        at,
        duration,
        every: every.map(|(e, _)| e),
        count,
        spec: spec?,
    };
    if let Some(total) = total
        && let Some((_, end)) = scheduled.windows().last()
        && end > total
    {
        let windows = if count.get() > 1 {
            "its last window"
        } else {
            "it"
        };
        c.error(
            f.at.span(),
            key("at"),
            format!(
                "the fault falls outside the run: {windows} ends at {} but the run lasts {}",
                humantime::format_duration(end),
                humantime::format_duration(total)
            ),
        );
        return None;
    }
    known.then_some(scheduled)
}

/// Builds the mock's raw fault from the flat keys and compiles it with the mock's rules,
/// placing any complaint on the key it is about.
fn compile_spec(
    c: &mut Check<'_>,
    i: usize,
    spanned: &Spanned<RawScheduledFault>,
) -> Option<crate::mock::FaultSpec> {
    let f = spanned.get_ref();
    let raw = RawFault {
        kind: f.kind.as_ref().map(|k| *k.get_ref()),
        rate: f.rate.as_ref().map(|r| *r.get_ref()),
        model: f.model.clone(),
        status: f.status.as_ref().map(|s| *s.get_ref()),
        message: f.message.clone(),
        code: f.code,
        retry_after: f.retry_after.as_ref().map(|r| r.get_ref().clone()),
        delay: f.delay.as_ref().map(|d| d.get_ref().clone()),
        hang_for: f.hang_for.as_ref().map(|h| h.get_ref().clone()),
        after_chunks: f.after_chunks.as_ref().map(|a| *a.get_ref()),
        tokens_per_second: f.tokens_per_second.as_ref().map(|t| *t.get_ref()),
    };
    match raw.compile() {
        Ok(spec) => Some(spec),
        Err(e) => {
            let span: Option<Range<usize>> = match e.field {
                "kind" => f.kind.as_ref().map(Spanned::span),
                "rate" => f.rate.as_ref().map(Spanned::span),
                "status" => f.status.as_ref().map(Spanned::span),
                "retry_after" => f.retry_after.as_ref().map(Spanned::span),
                "delay" => f.delay.as_ref().map(Spanned::span),
                "hang_for" => f.hang_for.as_ref().map(Spanned::span),
                "after_chunks" => f.after_chunks.as_ref().map(Spanned::span),
                "tokens_per_second" => f.tokens_per_second.as_ref().map(Spanned::span),
                _ => None,
            };
            c.error(
                span.unwrap_or_else(|| spanned.span()),
                format!("faults[{i}].{}", e.field),
                e.message,
            );
            None
        }
    }
}
