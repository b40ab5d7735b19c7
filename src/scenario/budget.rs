//! `[budget]`: the most a run that reaches paid providers may spend, in dollars (estimated
//! from the tokens the upstreams count and their prices) and in tokens.

use toml::Spanned;

use super::model::{Budget, Upstream, UpstreamSource};
use super::raw::RawBudget;
use crate::config::Check;

pub(super) fn compile(
    c: &mut Check<'_>,
    raw: Option<&Spanned<RawBudget>>,
    upstreams: &[Upstream],
) -> Option<Budget> {
    let spanned = raw?;
    let b = spanned.get_ref();
    let max_cost = b
        .max_cost
        .as_ref()
        .and_then(|v| dollars(c, v, "budget.max_cost"));
    let max_tokens = b
        .max_tokens
        .as_ref()
        .and_then(|v| token_count(c, v, "budget.max_tokens"));
    if b.max_cost.is_none() && b.max_tokens.is_none() {
        c.error(
            spanned.span(),
            "budget",
            "set `max_cost = \"$5\"` and/or `max_tokens = 200000`",
        );
    }
    if max_cost.is_some() {
        // A real provider's cost is only known from the prices the scenario gives it.
        for u in upstreams {
            if let UpstreamSource::Proxy { price: None, .. } = &u.source {
                let at = b.max_cost.as_ref().map_or(spanned.span(), |v| v.span());
                c.error(
                    at,
                    "budget.max_cost",
                    format!(
                        "upstream `{}` is a real provider without prices: give it \
                         `input_price_per_m` and `output_price_per_m` (US dollars per 1M \
                         tokens), or budget with `max_tokens` only",
                        u.name
                    ),
                );
            }
        }
    }
    Some(Budget {
        max_cost,
        max_tokens,
    })
}

/// An amount of US dollars above zero, written "$5", "5" or 5.0.
pub(super) fn dollars(c: &mut Check<'_>, v: &Spanned<toml::Value>, key: &str) -> Option<f64> {
    let amount = match v.get_ref() {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::String(s) => s.trim().trim_start_matches('$').trim().parse::<f64>().ok(),
        _ => None,
    };
    match amount {
        Some(d) if d.is_finite() && d > 0.0 => Some(d),
        _ => {
            c.error(
                v.span(),
                key,
                format!(
                    "{} is not an amount of US dollars above zero; write it like \"$5\" or 5.0",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// A token count above zero.
pub(super) fn token_count(c: &mut Check<'_>, v: &Spanned<i64>, key: &str) -> Option<u64> {
    match u64::try_from(*v.get_ref()) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            c.error(
                v.span(),
                key,
                format!("{} is not a token count above zero", v.get_ref()),
            );
            None
        }
    }
}
