//! Cost: tokens times each upstream's price, per run, per million requests, projected per
//! month, what failover added by moving traffic to pricier upstreams, and what the same tokens
//! would cost at each alternative's prices (the savings of the mix). Prompt tokens served from a
//! provider's prefix cache are priced at its cached-input price when it has one; reasoning
//! tokens are part of the completion and billed as output.

use std::collections::BTreeMap;

use super::failover::overlapping;
use super::summary::{
    AlternativeCost, Cost, MonthlyCost, MonthlySavings, Summary, Tokens, UpstreamStats,
};
use crate::scenario::Alternative;

/// US dollars per million input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_m: f64,
    pub output_per_m: f64,
    /// Per million prompt tokens served from the prefix cache; None bills them as input.
    pub cached_input_per_m: Option<f64>,
}

impl Price {
    /// US dollars for these tokens. Cached tokens are a part of the prompt, never more.
    pub fn of(&self, t: &Tokens) -> f64 {
        let cached = t.cached.min(t.prompt);
        let fresh = t.prompt - cached;
        let cached_price = self.cached_input_per_m.unwrap_or(self.input_per_m);
        (fresh as f64 * self.input_per_m
            + cached as f64 * cached_price
            + t.completion as f64 * self.output_per_m)
            / 1e6
    }
}

/// The monthly volumes a startup asks about when no `--monthly-tokens` is given.
pub const DEFAULT_MONTHLY_TOKENS: [u64; 4] = [5_000_000, 50_000_000, 500_000_000, 5_000_000_000];

/// Prices the upstreams in `summary.upstreams` (their token counts must be filled) and
/// returns the cost section; None when no upstream has a price.
pub fn price(
    summary: &mut Summary,
    prices: &BTreeMap<String, Price>,
    monthly_tokens: &[u64],
    alternatives: &[Alternative],
) -> Option<Cost> {
    if prices.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut tokens = 0u64;
    let mut counted = Tokens::default();
    for u in &mut summary.upstreams {
        if let Some(p) = prices.get(&u.name) {
            let usd = p.of(&u.tokens);
            u.price_in_per_m = Some(p.input_per_m);
            u.price_cached_in_per_m = p.cached_input_per_m;
            u.price_out_per_m = Some(p.output_per_m);
            u.cost_usd = Some(usd);
            total += usd;
            tokens += u.tokens.prompt + u.tokens.completion;
            counted.prompt += u.tokens.prompt;
            counted.completion += u.tokens.completion;
            // Reasoning tokens are part of the completion and priced with it: not summed apart.
            counted.cached += u.tokens.cached;
        }
    }
    let requests = summary.overall.requests.max(1);
    let blended = if tokens > 0 {
        total / tokens as f64 * 1e6
    } else {
        0.0
    };
    let monthly: Vec<MonthlyCost> = monthly_tokens
        .iter()
        .map(|&t| MonthlyCost {
            tokens_per_month: t,
            usd: blended * t as f64 / 1e6,
        })
        .collect();
    let mix = PricedTokens {
        tokens: counted,
        requests,
        usd: total,
    };
    Some(Cost {
        total_usd: total,
        per_million_requests_usd: total / requests as f64 * 1e6,
        blended_per_million_tokens_usd: blended,
        failover_extra_usd: failover_extra(summary, prices),
        alternatives: alternatives
            .iter()
            .map(|a| mix.against(a, &monthly))
            .collect(),
        monthly,
    })
}

/// The tokens the priced upstreams counted, what they cost, and the requests they served.
struct PricedTokens {
    tokens: Tokens,
    /// At least 1.
    requests: u64,
    usd: f64,
}

impl PricedTokens {
    /// These tokens at `alt`'s prices, and the difference at each of `ours`' monthly volumes.
    fn against(&self, alt: &Alternative, ours: &[MonthlyCost]) -> AlternativeCost {
        let price = Price {
            input_per_m: alt.input_price_per_m,
            output_per_m: alt.output_price_per_m,
            cached_input_per_m: alt.cached_input_price_per_m,
        };
        let usd = price.of(&self.tokens);
        let tokens = self.tokens.prompt + self.tokens.completion;
        let per_token = if tokens > 0 { usd / tokens as f64 } else { 0.0 };
        let savings = usd - self.usd;
        AlternativeCost {
            name: alt.name.clone(),
            input_price_per_m: alt.input_price_per_m,
            output_price_per_m: alt.output_price_per_m,
            total_usd: usd,
            per_million_requests_usd: usd / self.requests as f64 * 1e6,
            savings_usd: savings,
            savings_ratio: (usd > 0.0).then(|| savings / usd),
            monthly: ours
                .iter()
                .map(|m| {
                    let at = per_token * m.tokens_per_month as f64;
                    MonthlySavings {
                        tokens_per_month: m.tokens_per_month,
                        usd: at,
                        savings_usd: at - m.usd,
                    }
                })
                .collect(),
        }
    }
}

/// During each fault window, requests of affected classes served by an upstream other than
/// the faulted one cost that upstream's price instead of the faulted one's. Estimated from the
/// class's average tokens per request, since tokens are not kept per interval.
fn failover_extra(summary: &Summary, prices: &BTreeMap<String, Price>) -> f64 {
    let mut extra = 0.0;
    for w in summary.faults.iter().filter(|w| w.not_applied.is_none()) {
        let Some(usual) = prices.get(&w.upstream) else {
            continue;
        };
        let start = std::time::Duration::from_secs_f64(w.start_s.max(0.0));
        let end = std::time::Duration::from_secs_f64(w.end_s.max(0.0));
        for class in summary
            .classes
            .iter()
            .filter(|c| w.affected_classes.contains(&c.name))
        {
            // A served request's price, averaged over the class: prices are linear in tokens, so
            // the class's totals priced once and divided give the mean, cached prompt included.
            let ok = class.stats.successes.max(1) as f64;
            let usual_usd = usual.of(&class.stats.tokens) / ok;
            for iv in overlapping(summary, start, end) {
                let Some(st) = iv.classes.get(&class.name) else {
                    continue;
                };
                for (name, &n) in st.served_by.iter().filter(|(n, _)| **n != w.upstream) {
                    if let Some(p) = prices.get(name) {
                        extra += (p.of(&class.stats.tokens) / ok - usual_usd) * n as f64;
                    }
                }
            }
        }
    }
    extra
}

/// An upstream row for each name, in name order, from tokens and served counts the engine saw.
pub fn upstream_rows(
    served: &BTreeMap<String, (u64, super::summary::Tokens)>,
    received: &BTreeMap<String, u64>,
) -> Vec<UpstreamStats> {
    let mut names: Vec<&String> = served.keys().chain(received.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let (count, tokens) = served.get(n).copied().unwrap_or_default();
            UpstreamStats {
                name: n.clone(),
                received: received.get(n).copied(),
                served: count,
                tokens,
                price_in_per_m: None,
                price_cached_in_per_m: None,
                price_out_per_m: None,
                cost_usd: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::failover::{FaultAttempt, analyze, tests::outage_summary};
    use crate::metrics::summary::Tokens;
    use std::time::Duration;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The fault windows of `a`'s outage from 8 s to 14 s, as the run applied it.
    fn outage_of_a(s: &Summary) -> Vec<crate::metrics::summary::FaultWindow> {
        analyze(
            s,
            &[FaultAttempt::applied(
                "a",
                "outage",
                (secs(8), secs(14)),
                secs(8),
                Some(secs(14)),
            )],
            0.99,
        )
    }

    #[test]
    fn prices_tokens_and_failover_extra() {
        let mut s = outage_summary();
        s.overall.requests = 2000;
        s.classes[0].stats.tokens = Tokens {
            prompt: 19_400,
            completion: 19_400 * 3,
            ..Tokens::default()
        };
        let served = BTreeMap::from([
            (
                "a".to_string(),
                (
                    1300,
                    Tokens {
                        prompt: 13_000,
                        completion: 39_000,
                        ..Tokens::default()
                    },
                ),
            ),
            (
                "b".to_string(),
                (
                    640,
                    Tokens {
                        prompt: 6_400,
                        completion: 19_200,
                        ..Tokens::default()
                    },
                ),
            ),
        ]);
        s.upstreams = upstream_rows(&served, &BTreeMap::new());
        s.faults = outage_of_a(&s);
        let prices = BTreeMap::from([
            (
                "a".to_string(),
                Price {
                    input_per_m: 0.25,
                    output_per_m: 0.25,
                    cached_input_per_m: None,
                },
            ),
            (
                "b".to_string(),
                Price {
                    input_per_m: 2.5,
                    output_per_m: 2.5,
                    cached_input_per_m: None,
                },
            ),
        ]);
        let c = price(&mut s, &prices, &DEFAULT_MONTHLY_TOKENS, &[]).unwrap();
        let expected = 52_000.0 * 0.25 / 1e6 + 25_600.0 * 2.5 / 1e6;
        assert!((c.total_usd - expected).abs() < 1e-12);
        assert!((c.monthly[0].usd - c.blended_per_million_tokens_usd * 5.0).abs() < 1e-9);
        // 540 requests moved to b at 40 tokens each, 2.25 $/M more per token.
        let extra = 540.0 * 40.0 * 2.25 / 1e6;
        assert!(
            (c.failover_extra_usd - extra).abs() < 1e-9,
            "{}",
            c.failover_extra_usd
        );
        assert_eq!(s.upstreams[1].cost_usd, Some(25_600.0 * 2.5 / 1e6));
    }

    #[test]
    fn failover_to_an_upstream_without_a_cache_price_costs_the_cache_discount() {
        // Same list prices, but only `a` discounts cached prompt tokens: every request moved
        // to `b` pays full price for the half of its prompt `a` would have served from cache.
        let mut s = outage_summary();
        let served = s.classes[0].stats.successes;
        s.classes[0].stats.tokens = Tokens {
            prompt: served * 100,
            completion: served * 10,
            cached: served * 50,
            ..Tokens::default()
        };
        s.faults = outage_of_a(&s);
        let at = |cached| Price {
            input_per_m: 1.0,
            output_per_m: 1.0,
            cached_input_per_m: cached,
        };
        let prices = BTreeMap::from([
            ("a".to_string(), at(Some(0.1))),
            ("b".to_string(), at(None)),
        ]);
        let c = price(&mut s, &prices, &DEFAULT_MONTHLY_TOKENS, &[]).unwrap();
        // 540 requests moved, 50 cached tokens each, 0.9 $/M more per cached token.
        let extra = 540.0 * 50.0 * 0.9 / 1e6;
        assert!(
            (c.failover_extra_usd - extra).abs() < 1e-9,
            "{}",
            c.failover_extra_usd
        );
    }

    #[test]
    fn cached_prompt_tokens_are_billed_at_the_cached_price_and_never_more_than_the_prompt() {
        let p = Price {
            input_per_m: 1.0,
            output_per_m: 2.0,
            cached_input_per_m: Some(0.5),
        };
        let t = |prompt, cached| Tokens {
            prompt,
            completion: 100,
            cached,
            ..Tokens::default()
        };
        // 600 fresh at $1/M, 400 cached at $0.50/M, 100 out at $2/M.
        assert!((p.of(&t(1_000, 400)) - 1_000e-6).abs() < 1e-15);
        // A count of cached tokens above the prompt's is read as all of the prompt cached.
        assert!((p.of(&t(100, 500)) - 250e-6).abs() < 1e-15);
    }

    #[test]
    fn per_request_cost_cached_alternatives_and_an_empty_run_are_hand_computed() {
        let mut s = outage_summary();
        s.faults.clear();
        s.overall.requests = 500;
        let tokens = Tokens {
            prompt: 800_000,
            completion: 200_000,
            cached: 600_000,
            ..Tokens::default()
        };
        s.upstreams = upstream_rows(
            &BTreeMap::from([("a".to_string(), (500, tokens))]),
            &BTreeMap::new(),
        );
        let at = |input, cached| Price {
            input_per_m: input,
            output_per_m: 4.0,
            cached_input_per_m: cached,
        };
        let prices = BTreeMap::from([("a".to_string(), at(1.0, Some(0.25)))]);
        let alt = Alternative {
            name: "cached too".into(),
            input_price_per_m: 2.0,
            output_price_per_m: 4.0,
            cached_input_price_per_m: Some(0.5),
        };
        let c = price(&mut s, &prices, &[1_000_000], std::slice::from_ref(&alt)).unwrap();
        // Ours: 200k fresh at $1/M + 600k cached at $0.25/M + 200k out at $4/M = $1.15.
        assert!((c.total_usd - 1.15).abs() < 1e-12, "{}", c.total_usd);
        // 500 requests: $2,300 per million.
        assert!((c.per_million_requests_usd - 2_300.0).abs() < 1e-6);
        // The alternative bills the same cached tokens at its own cached price:
        // 200k at $2/M + 600k at $0.50/M + 200k at $4/M = $1.50, saving $0.35 (23.3%).
        let a = &c.alternatives[0];
        assert!((a.total_usd - 1.5).abs() < 1e-12, "{}", a.total_usd);
        assert!((a.savings_ratio.unwrap() - 0.35 / 1.5).abs() < 1e-12);

        // A run whose upstreams counted no token: every figure is 0, none is NaN, and no
        // savings ratio is claimed against an alternative that cost nothing.
        s.upstreams = upstream_rows(
            &BTreeMap::from([("a".to_string(), (0, Tokens::default()))]),
            &BTreeMap::new(),
        );
        let c = price(&mut s, &prices, &[1_000_000], std::slice::from_ref(&alt)).unwrap();
        assert_eq!(c.blended_per_million_tokens_usd, 0.0);
        assert_eq!(c.monthly[0].usd, 0.0);
        let a = &c.alternatives[0];
        assert_eq!((a.total_usd, a.monthly[0].usd), (0.0, 0.0));
        assert_eq!(a.savings_ratio, None);
    }

    #[test]
    fn savings_against_an_alternative_match_a_hand_computation_to_the_cent() {
        let mut s = outage_summary();
        s.faults.clear();
        s.overall.requests = 10_000;
        let served = BTreeMap::from([
            (
                "a".to_string(),
                (
                    8_000,
                    Tokens {
                        prompt: 1_000_000,
                        completion: 500_000,
                        ..Tokens::default()
                    },
                ),
            ),
            (
                "b".to_string(),
                (
                    2_000,
                    Tokens {
                        prompt: 200_000,
                        completion: 100_000,
                        ..Tokens::default()
                    },
                ),
            ),
        ]);
        s.upstreams = upstream_rows(&served, &BTreeMap::new());
        let flat = |p: f64| Price {
            input_per_m: p,
            output_per_m: p,
            cached_input_per_m: None,
        };
        let prices = BTreeMap::from([("a".to_string(), flat(0.25)), ("b".to_string(), flat(2.5))]);
        let gpt4o = Alternative {
            name: "gpt-4o direct".into(),
            input_price_per_m: 2.5,
            output_price_per_m: 10.0,
            cached_input_price_per_m: None,
        };
        let c = price(&mut s, &prices, &[5_000_000], std::slice::from_ref(&gpt4o)).unwrap();
        let cents = |usd: f64| (usd * 100.0).round() as i64;
        // Ours: 1.5M tokens at $0.25/M plus 0.3M at $2.50/M = $0.375 + $0.75.
        assert!((c.total_usd - 1.125).abs() < 1e-9, "{}", c.total_usd);
        let alt = &c.alternatives[0];
        assert_eq!(alt.name, "gpt-4o direct");
        // 1.2M input tokens at $2.50/M ($3.00) and 0.6M output tokens at $10/M ($6.00).
        assert_eq!(cents(alt.total_usd), 900);
        assert_eq!(cents(alt.per_million_requests_usd), 90_000);
        // $9.00 - $1.125 saved by the mix: 87.5% of the alternative.
        assert!(
            (alt.savings_usd - 7.875).abs() < 1e-9,
            "{}",
            alt.savings_usd
        );
        assert!((alt.savings_ratio.unwrap() - 0.875).abs() < 1e-12);
        // At 5M tokens a month: $5/M for the alternative ($25.00) against $0.625/M ($3.125).
        assert_eq!(alt.monthly[0].tokens_per_month, 5_000_000);
        assert_eq!(cents(alt.monthly[0].usd), 2_500);
        assert!((alt.monthly[0].savings_usd - 21.875).abs() < 1e-9);
    }
}
