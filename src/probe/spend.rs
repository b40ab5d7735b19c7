//! What the probe spent in the last 24 hours, and the caps that stop it: each answer is priced
//! at the upstream that served it, and the probe stops before the next request, costing what
//! the last one did, would pass a cap.

use std::collections::VecDeque;
use std::time::Duration;

use crate::metrics::cost::Price;
use crate::metrics::{Sample, ServedBy};

/// The span a daily cap covers: a rolling day, so a cap holds across midnight too.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The daily caps of `[probe]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Caps {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
}

/// A cap the probe reached, with what was spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CapReached {
    Cost { spent: f64, cap: f64 },
    Tokens { spent: u64, cap: u64 },
}

impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cost { spent, cap } => write!(
                f,
                "the daily cost cap is reached: ${spent:.4} spent in the last 24 hours, \
                 max_cost_per_day is ${cap:.4}"
            ),
            Self::Tokens { spent, cap } => write!(
                f,
                "the daily token cap is reached: {spent} tokens used in the last 24 hours, \
                 max_tokens_per_day is {cap}"
            ),
        }
    }
}

/// Prices by upstream index (`ServedBy::Known`), and the price of an answer whose upstream is
/// not known: the dearest, so a cap is never passed by counting too little.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    by_upstream: Vec<Option<Price>>,
    dearest: Option<Price>,
}

impl Prices {
    pub fn new(by_upstream: Vec<Option<Price>>) -> Self {
        let dearest = by_upstream.iter().flatten().copied().max_by(|a, b| {
            (a.input_per_m + a.output_per_m).total_cmp(&(b.input_per_m + b.output_per_m))
        });
        Self {
            by_upstream,
            dearest,
        }
    }

    pub fn known(&self) -> bool {
        self.dearest.is_some()
    }

    /// US dollars for one answer; None when no price is known.
    pub fn of(&self, s: &Sample) -> Option<f64> {
        let price = match &s.served_by {
            Some(ServedBy::Known(i)) => self
                .by_upstream
                .get(usize::from(*i))
                .copied()
                .flatten()
                .or(self.dearest),
            _ => self.dearest,
        }?;
        Some(price.of(&s.tokens()))
    }
}

/// The last 24 hours of spending, summed as it goes.
#[derive(Debug, Default)]
pub struct Spend {
    caps: Caps,
    entries: VecDeque<(Duration, f64, u64)>,
    usd: f64,
    tokens: u64,
    /// The last answer's cost: the estimate of the next one's.
    last: (f64, u64),
}

impl Spend {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            ..Self::default()
        }
    }

    /// Adds an answer's cost at `at`; returns the cap the next request would pass, if any.
    pub fn add(&mut self, at: Duration, usd: f64, tokens: u64) -> Option<CapReached> {
        self.entries.push_back((at, usd, tokens));
        self.usd += usd;
        self.tokens += tokens;
        self.last = (usd, tokens);
        self.trim(at);
        self.reached()
    }

    fn trim(&mut self, now: Duration) {
        let Some(from) = now.checked_sub(DAY) else {
            return;
        };
        while let Some(&(at, usd, tokens)) = self.entries.front() {
            if at > from {
                break;
            }
            self.entries.pop_front();
            self.usd -= usd;
            self.tokens -= tokens;
        }
        // Float sums drift; an empty day spent nothing.
        if self.entries.is_empty() {
            self.usd = 0.0;
        }
    }

    /// The cap that the spend so far plus one more request like the last one would pass.
    fn reached(&self) -> Option<CapReached> {
        if let Some(cap) = self.caps.usd
            && self.usd + self.last.0 > cap
        {
            return Some(CapReached::Cost {
                spent: self.usd,
                cap,
            });
        }
        if let Some(cap) = self.caps.tokens
            && self.tokens + self.last.1 > cap
        {
            return Some(CapReached::Tokens {
                spent: self.tokens,
                cap,
            });
        }
        None
    }

    /// Dollars and tokens of the last 24 hours.
    pub fn totals(&self) -> (f64, u64) {
        (self.usd, self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> Price {
        Price {
            input_per_m: input,
            output_per_m: output,
            cached_input_per_m: None,
        }
    }

    fn answer(served: Option<ServedBy>, prompt: u64, completion: u64) -> Sample {
        let mut s = Sample::new(0, Duration::ZERO, Duration::ZERO);
        s.served_by = served;
        s.prompt_tokens = prompt;
        s.completion_tokens = completion;
        s
    }

    #[test]
    fn answers_are_priced_at_their_upstream_or_the_dearest() {
        let p = Prices::new(vec![Some(price(1.0, 2.0)), None, Some(price(10.0, 20.0))]);
        // 1M prompt at $1 + 0.5M completion at $2 = $2.
        let cheap = p.of(&answer(Some(ServedBy::Known(0)), 1_000_000, 500_000));
        assert_eq!(cheap, Some(2.0));
        // Unknown upstream or an unpriced one: the dearest, $10 + $10.
        let unknown = p.of(&answer(
            Some(ServedBy::Other("x".into())),
            1_000_000,
            500_000,
        ));
        assert_eq!(unknown, Some(20.0));
        assert_eq!(
            p.of(&answer(Some(ServedBy::Known(1)), 1_000_000, 500_000)),
            Some(20.0)
        );
        assert_eq!(Prices::new(vec![None]).of(&answer(None, 5, 5)), None);
    }

    #[test]
    fn stops_before_the_next_request_would_pass_a_cap() {
        let mut s = Spend::new(Caps {
            usd: Some(1.0),
            tokens: None,
        });
        assert_eq!(s.add(Duration::from_secs(1), 0.3, 10), None);
        assert_eq!(s.add(Duration::from_secs(2), 0.3, 10), None); // 0.6 + 0.3 <= 1
        // 0.9 + 0.3 > 1: the next request would pass it.
        match s.add(Duration::from_secs(3), 0.3, 10) {
            Some(CapReached::Cost { spent, cap }) => {
                assert!((spent - 0.9).abs() < 1e-9, "{spent}");
                assert_eq!(cap, 1.0);
            }
            other => panic!("{other:?}"),
        }
        let mut t = Spend::new(Caps {
            usd: None,
            tokens: Some(100),
        });
        assert_eq!(t.add(Duration::from_secs(1), 0.0, 40), None);
        assert_eq!(
            t.add(Duration::from_secs(2), 0.0, 40),
            Some(CapReached::Tokens {
                spent: 80,
                cap: 100
            })
        );
    }

    #[test]
    fn a_day_old_spend_no_longer_counts() {
        let mut s = Spend::new(Caps {
            usd: None,
            tokens: Some(1_000),
        });
        s.add(Duration::from_secs(10), 0.5, 600);
        assert_eq!(s.totals(), (0.5, 600));
        // 24 h after the first, it has left the window.
        assert_eq!(s.add(DAY + Duration::from_secs(10), 0.1, 100), None);
        let (usd, tokens) = s.totals();
        assert!((usd - 0.1).abs() < 1e-12, "{usd}");
        assert_eq!(tokens, 100);
    }
}
