//! The fleet of a run: what the scenario asks gauntlet to start (mock upstreams from profiles,
//! the embedded gateway) and where each request class is sent. Starting and stopping live
//! only here.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::ConfigErrors;
use crate::gateway::{self, GatewayHandle};
use crate::mock::{self, MockHandle, Profile};
use crate::scenario::{Scenario, Target, UpstreamSource};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "request class `{class}` goes straight to the upstreams but no upstream serves model \
         `{model}`: set `primary` on the class or add the model to a profile"
    )]
    NoUpstreamFor { class: String, model: String },
    #[error("request class `{class}` names primary `{primary}`, which is not an upstream")]
    UnknownPrimary { class: String, primary: String },
    #[error("upstream `{name}`: {reason}")]
    Upstream { name: String, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("starting the embedded gateway: {0}")]
    Gateway(String),
}

/// Everything started for a run, and where to send each class.
pub struct Fleet {
    /// Base URL per request class, in the scenario's order.
    pub targets: Vec<String>,
    /// Upstream names, in the scenario's order (the recorder's `Layout::upstreams`).
    pub upstreams: Vec<String>,
    /// Base URL of each upstream, same order.
    pub upstream_urls: Vec<String>,
    /// Models each upstream serves, when its profile says (empty for running mocks).
    pub upstream_models: Vec<Vec<String>>,
    /// What is under test, for the summary: "embedded gateway", "direct to upstreams", a URL.
    pub description: String,
    mocks: Vec<MockHandle>,
    gateway: Option<GatewayHandle>,
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

impl Fleet {
    /// Starts what the scenario needs. `target` overrides the scenario's `[target]`.
    pub async fn start(scenario: &Scenario, target: Option<&str>) -> Result<Self, FleetError> {
        let mut fleet = Self {
            targets: Vec::new(),
            upstreams: scenario.upstreams.iter().map(|u| u.name.clone()).collect(),
            upstream_urls: Vec::new(),
            upstream_models: Vec::new(),
            description: String::new(),
            mocks: Vec::new(),
            gateway: None,
        };
        match fleet.start_parts(scenario, target).await {
            Ok(()) => Ok(fleet),
            Err(e) => {
                fleet.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_parts(
        &mut self,
        scenario: &Scenario,
        target: Option<&str>,
    ) -> Result<(), FleetError> {
        for u in &scenario.upstreams {
            match &u.source {
                UpstreamSource::Url { url, .. } => {
                    self.upstream_urls.push(url.clone());
                    self.upstream_models.push(Vec::new());
                }
                UpstreamSource::Profile(path) => {
                    let profile = Profile::load(path)?;
                    self.upstream_models
                        .push(profile.models.iter().map(|m| m.name.clone()).collect());
                    let handle = mock::start(profile, &u.name, loopback(), None)
                        .await
                        .map_err(|e| FleetError::Upstream {
                            name: u.name.clone(),
                            reason: e.to_string(),
                        })?;
                    self.upstream_urls.push(handle.url());
                    self.mocks.push(handle);
                }
            }
        }
        let target = match target {
            Some(url) => Target::Url(url.to_string()),
            None => scenario.target.clone(),
        };
        match &target {
            Target::Url(url) => {
                self.targets = vec![url.clone(); scenario.requests.len()];
                self.description = url.clone();
            }
            Target::Direct => {
                self.targets = self.direct_targets(scenario)?;
                self.description = "direct to upstreams".into();
            }
            Target::EmbeddedGateway => {
                let pairs: Vec<(String, String)> = self
                    .upstreams
                    .iter()
                    .cloned()
                    .zip(self.upstream_urls.iter().cloned())
                    .collect();
                let config = gateway::Config::from_embedded(&scenario.source, &pairs)?;
                let handle = gateway::start(config, loopback())
                    .await
                    .map_err(|e| FleetError::Gateway(e.to_string()))?;
                self.targets = vec![handle.url(); scenario.requests.len()];
                self.description = "embedded gateway".into();
                self.gateway = Some(handle);
            }
        }
        Ok(())
    }

    /// Without a gateway each class goes to its primary, or to the upstream serving its model.
    fn direct_targets(&self, scenario: &Scenario) -> Result<Vec<String>, FleetError> {
        scenario
            .requests
            .iter()
            .map(|c| {
                let index = match &c.primary {
                    Some(p) => self.upstreams.iter().position(|n| n == p).ok_or_else(|| {
                        FleetError::UnknownPrimary {
                            class: c.name.clone(),
                            primary: p.clone(),
                        }
                    })?,
                    None => self
                        .upstream_models
                        .iter()
                        .position(|models| models.contains(&c.model))
                        .or((self.upstreams.len() == 1).then_some(0))
                        .ok_or_else(|| FleetError::NoUpstreamFor {
                            class: c.name.clone(),
                            model: c.model.clone(),
                        })?,
                };
                Ok(self.upstream_urls[index].clone())
            })
            .collect()
    }

    /// What each mock gauntlet started says it received, by upstream name.
    pub fn mock_stats(&self) -> Vec<(String, mock::MockStats)> {
        self.mocks
            .iter()
            .map(|m| (m.name().to_string(), m.stats()))
            .collect()
    }

    /// Stops everything the fleet started: the gateway first, then its upstreams.
    pub async fn shutdown(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
        for m in self.mocks.drain(..) {
            m.shutdown().await;
        }
    }
}
