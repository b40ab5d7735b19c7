//! The numbers only `gauntlet probe` has: burn rates per SLO and window, which alerts fire,
//! what the last 24 hours cost and how long the probe is backing off. The probe sets them as
//! it judges; a scrape renders them after the run's own families.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::exposition::{self as text, MetricType};

#[derive(Debug, Default)]
struct GaugeState {
    /// (slo, window as written) -> burn rate.
    burn: BTreeMap<(String, String), f64>,
    /// (alert, slo) -> firing.
    firing: BTreeMap<(String, String), bool>,
    /// alert -> the burn rate both windows must pass.
    thresholds: BTreeMap<String, f64>,
    spent_usd: Option<f64>,
    spent_tokens: u64,
    backoff: Duration,
}

/// The probe's gauges; see the module doc.
#[derive(Debug, Default)]
pub struct ProbeGauges {
    state: Mutex<GaugeState>,
}

impl ProbeGauges {
    fn with(&self, f: impl FnOnce(&mut GaugeState)) {
        // A scrape that panicked poisons the lock; the probe goes on setting numbers.
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Announces an alert (so it reads 0 before it ever fires) and its threshold.
    pub fn declare_alert(&self, alert: &str, slo: &str, factor: f64) {
        self.with(|s| {
            s.firing.entry((alert.into(), slo.into())).or_insert(false);
            s.thresholds.insert(alert.into(), factor);
        });
    }

    pub fn set_burn(&self, slo: &str, window: &str, rate: f64) {
        self.with(|s| {
            s.burn.insert((slo.into(), window.into()), rate);
        });
    }

    pub fn set_firing(&self, alert: &str, slo: &str, firing: bool) {
        self.with(|s| {
            s.firing.insert((alert.into(), slo.into()), firing);
        });
    }

    /// The spend of the last 24 hours: dollars when prices are known, and tokens.
    pub fn set_spend(&self, usd: Option<f64>, tokens: u64) {
        self.with(|s| {
            s.spent_usd = usd;
            s.spent_tokens = tokens;
        });
    }

    pub fn set_backoff(&self, wait: Duration) {
        self.with(|s| s.backoff = wait);
    }

    /// The probe's families, Prometheus text format 0.0.4.
    pub fn render(&self, out: &mut String) {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let name = "gauntlet_probe_alert_firing";
        let help = "1 while the burn-rate alert fires for this SLO (both of its windows burn \
                    the error budget faster than its threshold), else 0.";
        text::family(out, name, MetricType::Gauge, help);
        for ((alert, slo), firing) in &s.firing {
            let labels = [("alert", alert.as_str()), ("slo", slo.as_str())];
            text::sample(out, name, &labels, u8::from(*firing));
        }
        let name = "gauntlet_probe_alert_threshold";
        let help = "The burn rate both windows of the alert must pass for it to fire.";
        text::family(out, name, MetricType::Gauge, help);
        for (alert, factor) in &s.thresholds {
            text::sample(
                out,
                name,
                &[("alert", alert.as_str())],
                text::float(*factor),
            );
        }
        let name = "gauntlet_probe_burn_rate";
        let help = "How many times faster than the SLO allows the error budget burns over \
                    the window (1 spends it exactly in time).";
        text::family(out, name, MetricType::Gauge, help);
        for ((slo, window), rate) in &s.burn {
            let labels = [("slo", slo.as_str()), ("window", window.as_str())];
            text::sample(out, name, &labels, text::float(*rate));
        }
        let name = "gauntlet_probe_spent_tokens";
        let help = "Prompt plus completion tokens the probe used in the last 24 hours.";
        text::family(out, name, MetricType::Gauge, help);
        text::sample(out, name, &[], s.spent_tokens);
        if let Some(usd) = s.spent_usd {
            let name = "gauntlet_probe_spent_usd";
            let help = "US dollars the probe spent in the last 24 hours, at the upstreams' prices.";
            text::family(out, name, MetricType::Gauge, help);
            text::sample(out, name, &[], text::float(usd));
        }
        let name = "gauntlet_probe_backoff_seconds";
        let help = "How much longer the probe holds off after a 429 (0 when sending normally).";
        text::family(out, name, MetricType::Gauge, help);
        text::sample(out, name, &[], text::float(s.backoff.as_secs_f64()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_alerts_read_zero_until_they_fire() {
        let g = ProbeGauges::default();
        g.declare_alert("page", "availability", 14.4);
        g.set_burn("availability", "1h", 2.5);
        let mut out = String::new();
        g.render(&mut out);
        assert!(
            out.contains("gauntlet_probe_alert_firing{alert=\"page\",slo=\"availability\"} 0\n")
        );
        assert!(out.contains("gauntlet_probe_alert_threshold{alert=\"page\"} 14.4\n"));
        assert!(out.contains("gauntlet_probe_burn_rate{slo=\"availability\",window=\"1h\"} 2.5\n"));
        assert!(
            !out.contains("gauntlet_probe_spent_usd"),
            "no prices, no dollars"
        );
        g.set_firing("page", "availability", true);
        g.set_spend(Some(0.25), 900);
        let mut out = String::new();
        g.render(&mut out);
        assert!(
            out.contains("gauntlet_probe_alert_firing{alert=\"page\",slo=\"availability\"} 1\n")
        );
        assert!(out.contains("gauntlet_probe_spent_usd 0.25\n"));
        assert!(out.contains("gauntlet_probe_spent_tokens 900\n"));
    }
}
