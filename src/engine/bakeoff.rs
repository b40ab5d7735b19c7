//! A bake-off: one scenario against several gateways in turn, with the same seed, plan, mix
//! and fault timeline, on one set of upstreams that is reset and left to settle between
//! targets, so no gateway inherits another's faults, counters or retries still in flight.

use tokio::sync::watch;

use super::fleet::StartedFleet;
use super::preflight::{self, Unready};
use super::session::{self, EngineError, Finished, RunOptions};
use super::settle;
use crate::mock::ControlError;
use crate::scenario::{Scenario, Target, UpstreamSource};

/// One gateway in the bake-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    pub name: String,
    pub target: ContenderTarget,
    /// Headers added to every request sent to this target (routing config per request).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContenderTarget {
    /// The reference gateway built from the scenario's `[gateway]` table.
    Embedded,
    /// A gateway running elsewhere.
    Url(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BakeoffError {
    #[error(
        "--embedded needs a [gateway] table in the scenario to build the reference gateway from"
    )]
    NoGateway,
    #[error(
        "target `{target}` is a gateway gauntlet does not start, but upstream `{upstream}` is a \
         mock gauntlet starts on a port chosen at run time, which that gateway cannot be \
         configured with: name the upstreams by `url` (start them with `gauntlet mock \
         --config FLEET.toml`, see scenarios/external-gateway.toml), or bake off --embedded alone"
    )]
    UnreachableMocks { target: String, upstream: String },
    #[error("{}", describe(.0))]
    NotReady(Vec<(Option<String>, Unready)>),
    #[error("resetting upstream `{upstream}` between targets: {source}")]
    Reset {
        upstream: String,
        #[source]
        source: ControlError,
    },
    #[error("target `{target}`: {source}")]
    Run {
        target: String,
        #[source]
        source: EngineError,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn describe(problems: &[(Option<String>, Unready)]) -> String {
    let line = |(name, u): &(Option<String>, Unready)| match name {
        Some(n) => format!("target `{n}`: {u}"),
        None => u.to_string(),
    };
    match problems {
        [one] => line(one),
        all => {
            let mut s = "the bake-off cannot start:".to_string();
            for p in all {
                s.push_str("\n  - ");
                s.push_str(&line(p));
            }
            s
        }
    }
}

/// Refuses, before anything starts, a line-up the scenario cannot serve.
pub fn check_lineup(scenario: &Scenario, contenders: &[Contender]) -> Result<(), BakeoffError> {
    let embedded = contenders
        .iter()
        .any(|c| c.target == ContenderTarget::Embedded);
    if embedded && !matches!(scenario.target, Target::EmbeddedGateway(_)) {
        return Err(BakeoffError::NoGateway);
    }
    let external = contenders
        .iter()
        .find(|c| matches!(c.target, ContenderTarget::Url(_)));
    let started = scenario
        .upstreams
        .iter()
        .find(|u| matches!(u.source, UpstreamSource::Profile(_)));
    if let (Some(c), Some(u)) = (external, started) {
        return Err(BakeoffError::UnreachableMocks {
            target: c.name.clone(),
            upstream: u.name.clone(),
        });
    }
    Ok(())
}

/// The upstreams (and the embedded gateway, when it takes part), started once for every target.
pub struct Bakeoff {
    fleet: StartedFleet,
    embedded_url: Option<String>,
}

impl std::fmt::Debug for Bakeoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bakeoff")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl Bakeoff {
    /// Starts what the scenario needs and preflights every target and running upstream at
    /// once; anything missing fails here, before any load, naming the target.
    pub async fn start(
        scenario: &Scenario,
        contenders: &[Contender],
    ) -> Result<Self, BakeoffError> {
        check_lineup(scenario, contenders)?;
        let embedded = contenders
            .iter()
            .any(|c| c.target == ContenderTarget::Embedded);
        let urls: Vec<&str> = contenders
            .iter()
            .filter_map(|c| match &c.target {
                ContenderTarget::Url(u) => Some(u.as_str()),
                ContenderTarget::Embedded => None,
            })
            .collect();
        // Without --embedded a URL stands in for the scenario's target, so no gateway starts.
        let first = if embedded {
            None
        } else {
            urls.first().copied()
        };
        let mut fleet = StartedFleet::start(scenario, first, &scenario.tls)
            .await
            .map_err(EngineError::from)?;
        let embedded_url = embedded.then(|| fleet.targets.first().cloned()).flatten();
        fleet.targets = urls.iter().map(|u| u.to_string()).collect();
        let problems = preflight::check(scenario, &fleet).await;
        if !problems.is_empty() {
            fleet.shutdown().await;
            let named = problems
                .into_iter()
                .map(|p| {
                    let url = match &p {
                        Unready::NoTarget { url, .. }
                        | Unready::TargetSilent { url, .. }
                        | Unready::TargetTls { url, .. } => Some(url.as_str()),
                        _ => None,
                    };
                    let names: Vec<&str> = contenders
                        .iter()
                        .filter(|c| url.is_some_and(|u| c.target == ContenderTarget::Url(u.into())))
                        .map(|c| c.name.as_str())
                        .collect();
                    ((!names.is_empty()).then(|| names.join("`, `")), p)
                })
                .collect();
            return Err(BakeoffError::NotReady(named));
        }
        Ok(Self {
            fleet,
            embedded_url,
        })
    }

    /// Settles and resets the upstreams, then runs the scenario against one target.
    pub async fn run(
        &mut self,
        scenario: &Scenario,
        contender: &Contender,
        options: &RunOptions,
        stop: watch::Receiver<bool>,
    ) -> Result<Finished, BakeoffError> {
        settle::settle(&self.fleet.controls).await;
        settle::reset(&self.fleet.controls)
            .await
            .map_err(|(upstream, source)| BakeoffError::Reset { upstream, source })?;
        let url = match &contender.target {
            ContenderTarget::Url(u) => u.clone(),
            ContenderTarget::Embedded => {
                self.embedded_url.clone().ok_or(BakeoffError::NoGateway)?
            }
        };
        self.fleet.targets = vec![url.clone(); scenario.requests.len()];
        self.fleet.description = match contender.target {
            ContenderTarget::Embedded => format!("{} (embedded gateway)", contender.name),
            ContenderTarget::Url(_) => format!("{} ({url})", contender.name),
        };
        let scenario = with_headers(scenario, &contender.headers);
        let run = async {
            let load = session::load_runtime(&scenario, options)?;
            session::drive(&scenario, options, load, &self.fleet, stop).await
        };
        run.await.map_err(|source| BakeoffError::Run {
            target: contender.name.clone(),
            source,
        })
    }

    /// Stops what was started. Running upstreams keep the last target's counters, for
    /// whoever reads them next; its faults were lifted by its own fault timeline.
    pub async fn shutdown(self) {
        self.fleet.shutdown().await;
    }
}

/// The scenario with `headers` added to every request class.
fn with_headers(scenario: &Scenario, headers: &[(String, String)]) -> Scenario {
    let mut s = scenario.clone();
    for class in &mut s.requests {
        class.headers.extend(headers.iter().cloned());
    }
    s
}
