//! The faults active on a mock (profile defaults plus runtime ones) and, per request, the
//! plan they add up to: which failure to play and which delays or rate changes to apply.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use super::fault::{FaultKind, FaultKindName, FaultSpec, RateLimitCode, RawFault};

/// The id the control API hands out for an added fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An active fault as `GET /__gauntlet/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEntry {
    pub id: FaultId,
    pub fault: RawFault,
}

/// What happens to one request instead of (or on top of) a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Serve,
    Error {
        status: u16,
        message: Option<String>,
    },
    RateLimit {
        code: RateLimitCode,
        retry_after: Duration,
    },
    Hang(Duration),
    Reset,
    Malformed,
    Outage,
}

/// The sum of the faults that hit one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultPlan {
    pub action: Action,
    pub delay: Duration,
    pub tokens_per_second: Option<f64>,
    pub cut_after: Option<u32>,
    /// Kinds that hit, for the stats.
    pub hits: Vec<FaultKindName>,
}

impl FaultPlan {
    pub fn clean() -> Self {
        Self {
            action: Action::Serve,
            delay: Duration::ZERO,
            tokens_per_second: None,
            cut_after: None,
            hits: Vec::new(),
        }
    }
}

struct Active {
    id: FaultId,
    spec: FaultSpec,
}

/// Active faults. Reads are a flag check when nothing is active, so the fault-free hot
/// path pays nothing.
pub(crate) struct Injector {
    faults: RwLock<Arc<Vec<Active>>>,
    any: AtomicBool,
    next_id: AtomicU64,
}

impl Injector {
    pub fn new(defaults: &[FaultSpec]) -> Self {
        let inj = Self {
            faults: RwLock::new(Arc::new(Vec::new())),
            any: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        };
        for f in defaults {
            inj.add(f.clone());
        }
        inj
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Active>) -> bool) -> bool {
        let mut guard = match self.faults.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next: Vec<Active> = guard
            .iter()
            .map(|a| Active {
                id: a.id,
                spec: a.spec.clone(),
            })
            .collect();
        let changed = f(&mut next);
        self.any.store(!next.is_empty(), Ordering::Release);
        *guard = Arc::new(next);
        changed
    }

    /// Whether any fault is active: a flag read, so the fault-free path pays nothing.
    pub fn any_active(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn current(&self) -> Arc<Vec<Active>> {
        match self.faults.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn add(&self, spec: FaultSpec) -> FaultId {
        let id = FaultId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.update(|v| {
            v.push(Active { id, spec });
            true
        });
        id
    }

    pub fn remove(&self, id: FaultId) -> bool {
        self.update(|v| {
            let before = v.len();
            v.retain(|a| a.id != id);
            v.len() != before
        })
    }

    pub fn clear(&self) -> usize {
        let mut n = 0;
        self.update(|v| {
            n = v.len();
            v.clear();
            true
        });
        n
    }

    pub fn list(&self) -> Vec<FaultEntry> {
        self.current()
            .iter()
            .map(|a| FaultEntry {
                id: a.id,
                fault: a.spec.to_raw(),
            })
            .collect()
    }

    /// Rolls every active fault that matches the model; the first fault that replaces the
    /// answer wins, delays add up, and the slowest stream rate applies.
    pub fn plan(&self, model: &str, rng: &mut SmallRng) -> FaultPlan {
        let mut plan = FaultPlan::clean();
        if !self.any.load(Ordering::Acquire) {
            return plan;
        }
        for a in self.current().iter() {
            let spec = &a.spec;
            if spec.model.as_deref().is_some_and(|m| m != model) {
                continue;
            }
            if spec.rate < 1.0 && !rng.random_bool(spec.rate) {
                continue;
            }
            let replaces = !matches!(plan.action, Action::Serve);
            let hit = match &spec.kind {
                FaultKind::Latency { delay } => {
                    plan.delay += delay.sample(rng);
                    true
                }
                FaultKind::SlowStream { tokens_per_second } => {
                    plan.tokens_per_second = Some(
                        plan.tokens_per_second
                            .map_or(*tokens_per_second, |r| r.min(*tokens_per_second)),
                    );
                    true
                }
                FaultKind::StreamCut { after_chunks } => {
                    plan.cut_after = Some(
                        plan.cut_after
                            .map_or(*after_chunks, |c| c.min(*after_chunks)),
                    );
                    true
                }
                _ if replaces => false,
                FaultKind::Error { status, message } => {
                    plan.action = Action::Error {
                        status: *status,
                        message: message.clone(),
                    };
                    true
                }
                FaultKind::RateLimit { code, retry_after } => {
                    plan.action = Action::RateLimit {
                        code: *code,
                        retry_after: *retry_after,
                    };
                    true
                }
                FaultKind::Hang { hang_for } => {
                    plan.action = Action::Hang(*hang_for);
                    true
                }
                FaultKind::Reset => {
                    plan.action = Action::Reset;
                    true
                }
                FaultKind::Malformed => {
                    plan.action = Action::Malformed;
                    true
                }
                FaultKind::Outage => {
                    plan.action = Action::Outage;
                    true
                }
            };
            if hit {
                plan.hits.push(spec.kind.name());
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spec(kind: FaultKind, rate: f64, model: Option<&str>) -> FaultSpec {
        FaultSpec {
            kind,
            rate,
            model: model.map(str::to_string),
        }
    }

    #[test]
    fn model_filter_and_rate_apply() {
        let inj = Injector::new(&[]);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(inj.plan("a", &mut rng), FaultPlan::clean());
        let id = inj.add(spec(FaultKind::Reset, 1.0, Some("a")));
        assert_eq!(inj.plan("a", &mut rng).action, Action::Reset);
        assert_eq!(inj.plan("b", &mut rng).action, Action::Serve);
        assert!(inj.remove(id));
        assert!(!inj.remove(id));
        inj.add(spec(FaultKind::Outage, 0.25, None));
        let hits = (0..4000)
            .filter(|_| inj.plan("a", &mut rng).action == Action::Outage)
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(inj.clear(), 1);
        assert_eq!(inj.plan("a", &mut rng), FaultPlan::clean());
    }

    #[test]
    fn first_replacing_fault_wins_and_modifiers_stack() {
        let inj = Injector::new(&[
            spec(
                FaultKind::Error {
                    status: 503,
                    message: None,
                },
                1.0,
                None,
            ),
            spec(FaultKind::Reset, 1.0, None),
            spec(
                FaultKind::Latency {
                    delay: crate::config::DurationDist::fixed(Duration::from_millis(5)),
                },
                1.0,
                None,
            ),
        ]);
        let p = inj.plan("m", &mut SmallRng::seed_from_u64(0));
        assert!(matches!(p.action, Action::Error { status: 503, .. }));
        assert_eq!(p.delay, Duration::from_millis(5));
        assert_eq!(p.hits, vec![FaultKindName::Error, FaultKindName::Latency]);
    }
}
