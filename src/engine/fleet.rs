//! The fleet of a run: what the scenario asks gauntlet to start (mock upstreams, the embedded
//! gateway) and where each request class is sent. Starting and stopping live only here.

use crate::scenario::{Scenario, Target, UpstreamSource};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "request class `{class}` goes straight to the upstreams but gauntlet cannot tell which \
         one serves model `{model}`: set `primary` on the class"
    )]
    NoUpstreamFor { class: String, model: String },
    #[error("request class `{class}` names primary `{primary}`, which is not an upstream")]
    UnknownPrimary { class: String, primary: String },
    #[error("upstream `{name}`: {reason}")]
    Upstream { name: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

/// Everything started for a run, and where to send each class.
#[derive(Debug)]
pub struct Fleet {
    /// Base URL per request class, in the scenario's order.
    pub targets: Vec<String>,
    /// Upstream names, in the scenario's order (the recorder's `Layout::upstreams`).
    pub upstreams: Vec<String>,
    /// Base URL of each upstream, same order.
    pub upstream_urls: Vec<String>,
    /// What is under test, for the summary: "embedded gateway", "direct to upstreams", a URL.
    pub description: String,
}

impl Fleet {
    /// Starts what the scenario needs. `target` overrides the scenario's `[target]`.
    pub async fn start(scenario: &Scenario, target: Option<&str>) -> Result<Self, FleetError> {
        let upstreams: Vec<String> = scenario.upstreams.iter().map(|u| u.name.clone()).collect();
        let mut upstream_urls = Vec::with_capacity(upstreams.len());
        for u in &scenario.upstreams {
            match &u.source {
                UpstreamSource::Url { url, .. } => upstream_urls.push(url.clone()),
                UpstreamSource::Profile(path) => {
                    return Err(FleetError::Upstream {
                        name: u.name.clone(),
                        reason: format!(
                            "starting a mock from profile {} needs the mock module",
                            path.display()
                        ),
                    });
                }
            }
        }
        let target = match target {
            Some(url) => Target::Url(url.to_string()),
            None => scenario.target.clone(),
        };
        let (targets, description) = match &target {
            Target::Url(url) => (vec![url.clone(); scenario.requests.len()], url.clone()),
            Target::Direct => (
                direct_targets(scenario, &upstreams, &upstream_urls)?,
                "direct to upstreams".to_string(),
            ),
            Target::EmbeddedGateway => {
                return Err(FleetError::Unsupported(
                    "the embedded gateway is not available in this build; give --target URL".into(),
                ));
            }
        };
        Ok(Self {
            targets,
            upstreams,
            upstream_urls,
            description,
        })
    }

    /// Stops everything the fleet started.
    pub async fn shutdown(self) {}
}

/// Without a gateway each class goes to its primary upstream, or to the only one there is.
fn direct_targets(
    scenario: &Scenario,
    names: &[String],
    urls: &[String],
) -> Result<Vec<String>, FleetError> {
    scenario
        .requests
        .iter()
        .map(|c| {
            let index =
                match &c.primary {
                    Some(p) => names.iter().position(|n| n == p).ok_or_else(|| {
                        FleetError::UnknownPrimary {
                            class: c.name.clone(),
                            primary: p.clone(),
                        }
                    })?,
                    None if names.len() == 1 => 0,
                    None => {
                        return Err(FleetError::NoUpstreamFor {
                            class: c.name.clone(),
                            model: c.model.clone(),
                        });
                    }
                };
            Ok(urls[index].clone())
        })
        .collect()
}
