//! The fleet of a run: what the scenario asks gauntlet to start (mock upstreams, the embedded
//! gateway) and where each request class is sent. Starting and stopping live only here.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::gateway::{self, EmbeddedConfig, GatewayHandle};
use crate::metrics::cost::Price;
use crate::mock::{self, ControlClient, MockHandle, Profile};
use crate::observe::{GATEWAY_THREADS, MOCK_THREADS};
use crate::scenario::{Scenario, Target, UpstreamSource};
use crate::tls::{ClientSettings, ClientTls};

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
    #[error("the embedded gateway: {0}")]
    Gateway(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// Everything started for a run, and where to send each class.
pub struct StartedFleet {
    /// Base URL per request class, in the scenario's order.
    pub targets: Vec<String>,
    /// Upstream names, in the scenario's order (the recorder's `Layout::upstreams`).
    pub upstreams: Vec<String>,
    /// Base URL of each upstream, same order.
    pub upstream_urls: Vec<String>,
    /// What is under test, for the summary: "embedded gateway", "direct to upstreams", a URL.
    pub description: String,
    /// The control API of every upstream, started here or running elsewhere.
    pub controls: HashMap<String, ControlClient>,
    /// Prices of the upstreams whose profile gauntlet read.
    pub prices: BTreeMap<String, Price>,
    /// What the run's clients trust and present over TLS.
    pub tls: ClientSettings,
    /// The API each upstream speaks to the embedded gateway, same order.
    upstream_apis: Vec<crate::api::Api>,
    mocks: Vec<MockHandle>,
    gateway: Option<GatewayHandle>,
    /// The runtimes the mocks and the gateway run on, made lazily: their own threads, named
    /// so the SUT watcher can tell their CPU apart from the load generator's.
    mock_runtime: Option<PartRuntime>,
    gateway_runtime: Option<PartRuntime>,
}

/// A runtime of its own for one part of the fleet. Stopped without blocking, since the fleet
/// is dropped from async code, where a blocking shutdown would panic.
struct PartRuntime(Option<tokio::runtime::Runtime>);

impl PartRuntime {
    fn new(thread_name: &str) -> Result<Self, String> {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| format!("cannot start the {thread_name} runtime's threads: {e}"))
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Runs `fut` on this runtime, so every task it spawns lives on its threads.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        let handle = self.handle().ok_or("the runtime is stopped")?;
        handle.spawn(fut).await.map_err(|e| e.to_string())
    }
}

impl Drop for PartRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for StartedFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedFleet")
            .field("targets", &self.targets)
            .field("upstreams", &self.upstreams)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Everything a run starts listens on loopback only.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A profile's price: its first model's, since an upstream is priced by what it serves.
/// An upstream's prices: its profile's (first model), or those a proxied provider was given;
/// a running mock's are not known.
pub(super) fn price_of(source: &UpstreamSource) -> Option<Price> {
    match source {
        UpstreamSource::Profile(profile) => profile.models.first().map(|m| Price {
            input_per_m: m.input_price_per_m,
            output_per_m: m.output_price_per_m,
            cached_input_per_m: m.cached_input_price_per_m,
        }),
        UpstreamSource::Proxy { price, .. } => price.map(|p| Price {
            input_per_m: p.input_per_m,
            output_per_m: p.output_per_m,
            cached_input_per_m: None,
        }),
        UpstreamSource::Url { .. } => None,
    }
}

impl StartedFleet {
    /// Starts what the scenario needs. `target` overrides the scenario's `[target]`.
    /// `tls` is what the run's clients trust (the scenario's `[tls]` and the command line's).
    pub async fn start(
        scenario: &Scenario,
        target: Option<&str>,
        tls: &ClientSettings,
    ) -> Result<Self, FleetError> {
        Self::start_on(scenario, target, tls, None, false).await
    }

    /// Like `start`, with the embedded gateway listening on `gateway_ip` (loopback when
    /// None): a coordinator's shards on other machines send their load to it. `load_only`
    /// starts no mock of its own: a shard that only sends load to a coordinator's fleet.
    pub async fn start_on(
        scenario: &Scenario,
        target: Option<&str>,
        tls: &ClientSettings,
        gateway_ip: Option<std::net::IpAddr>,
        load_only: bool,
    ) -> Result<Self, FleetError> {
        let mut fleet = StartedFleet {
            tls: tls.clone(),
            targets: Vec::new(),
            upstreams: scenario.upstreams.iter().map(|u| u.name.clone()).collect(),
            upstream_apis: scenario.upstreams.iter().map(|u| u.api).collect(),
            upstream_urls: Vec::with_capacity(scenario.upstreams.len()),
            description: String::new(),
            controls: HashMap::new(),
            prices: BTreeMap::new(),
            mocks: Vec::new(),
            gateway: None,
            mock_runtime: None,
            gateway_runtime: None,
        };
        if let Err(e) = fleet.start_upstreams(scenario, load_only).await {
            fleet.shutdown().await;
            return Err(e);
        }
        let target = match target {
            Some(url) => Target::Url(url.to_string()),
            None => scenario.target.clone(),
        };
        let started = match &target {
            Target::Url(url) => Ok((vec![url.clone(); scenario.requests.len()], url.clone())),
            Target::Direct => direct_targets(scenario, &fleet.upstreams, &fleet.upstream_urls)
                .map(|t| (t, "direct to upstreams".to_string())),
            Target::EmbeddedGateway(config) => {
                fleet.start_gateway(config, gateway_ip).await.map(|url| {
                    (
                        vec![url; scenario.requests.len()],
                        "embedded gateway".to_string(),
                    )
                })
            }
        };
        match started {
            Ok((targets, description)) => {
                fleet.targets = targets;
                fleet.description = description;
                Ok(fleet)
            }
            Err(e) => {
                fleet.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_upstreams(
        &mut self,
        scenario: &Scenario,
        load_only: bool,
    ) -> Result<(), FleetError> {
        let client_tls = ClientTls::new(&self.tls).map_err(|e| FleetError::Tls(e.to_string()))?;
        for u in &scenario.upstreams {
            let err = |reason: String| FleetError::Upstream {
                name: u.name.clone(),
                reason,
            };
            if let Some(p) = price_of(&u.source) {
                self.prices.insert(u.name.clone(), p);
            }
            let (url, token) = match &u.source {
                UpstreamSource::Url { url, admin_token } => (
                    url.clone(),
                    admin_token.as_ref().map(|t| t.expose().to_string()),
                ),
                // Another process runs this upstream; it is known by name only here.
                _ if load_only => {
                    self.upstream_urls.push(String::new());
                    continue;
                }
                source => {
                    let handle = self.start_local(&u.name, source).await.map_err(err)?;
                    let url = handle.url();
                    self.mocks.push(handle);
                    (url, None)
                }
            };
            let control = ControlClient::with_tls(&url, token, &client_tls)
                .map_err(|e| err(e.to_string()))?;
            self.controls.insert(u.name.clone(), control);
            self.upstream_urls.push(url);
        }
        Ok(())
    }

    /// Starts the mock, or the proxy in front of a real provider, an upstream asks for, on
    /// the mocks' runtime.
    async fn start_local(
        &mut self,
        name: &str,
        source: &UpstreamSource,
    ) -> Result<MockHandle, String> {
        if self.mock_runtime.is_none() {
            self.mock_runtime = Some(PartRuntime::new(MOCK_THREADS)?);
        }
        let runtime = self.mock_runtime.as_ref().ok_or("no mock runtime")?;
        let name = name.to_string();
        let started = match source {
            UpstreamSource::Profile(profile) => {
                let profile = Profile::clone(profile);
                runtime
                    .run(async move { mock::start(profile, &name, loopback(), None).await })
                    .await?
            }
            UpstreamSource::Proxy { url, api_key, .. } => {
                let forward = mock::Forward::new(url, api_key.clone(), &self.tls)
                    .map_err(|e| e.to_string())?;
                runtime
                    .run(async move {
                        mock::start_proxy(&name, loopback(), None, forward, None).await
                    })
                    .await?
            }
            UpstreamSource::Url { url, .. } => return Err(format!("{url} is not started here")),
        };
        started.map_err(|e| e.to_string())
    }

    /// Binds the gateway compiled at validation to the addresses the upstreams got.
    async fn start_gateway(
        &mut self,
        config: &EmbeddedConfig,
        ip: Option<std::net::IpAddr>,
    ) -> Result<String, FleetError> {
        let addr = ip.map_or_else(loopback, |ip| SocketAddr::new(ip, 0));
        let config = config
            .bind(|name| {
                let i = self.upstreams.iter().position(|n| n == name)?;
                let url = self.upstream_urls.get(i)?;
                Some((
                    url.as_str(),
                    self.upstream_apis.get(i).copied().unwrap_or_default(),
                ))
            })
            .map_err(|e| FleetError::Gateway(e.to_string()))?;
        let tls = gateway::GatewayTls {
            serve: None,
            upstreams: self.tls.clone(),
        };
        let runtime = PartRuntime::new(GATEWAY_THREADS).map_err(FleetError::Gateway)?;
        let handle = runtime
            .run(async move { gateway::start_with(config, addr, tls).await })
            .await
            .map_err(FleetError::Gateway)?
            .map_err(|e| FleetError::Gateway(e.to_string()))?;
        self.gateway_runtime = Some(runtime);
        let url = handle.url();
        self.gateway = Some(handle);
        Ok(url)
    }

    /// Base URL per request class of its primary upstream: where the direct baseline sends
    /// it. Refused for a class whose primary cannot be told.
    pub fn direct_targets(&self, scenario: &Scenario) -> Result<Vec<String>, FleetError> {
        direct_targets(scenario, &self.upstreams, &self.upstream_urls)
    }

    /// Stops everything the fleet started: the gateway first, so it sends nothing more.
    pub async fn shutdown(self) {
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
        for m in self.mocks {
            m.shutdown().await;
        }
        // The runtimes go last (dropped here), once their servers have stopped.
    }

    /// What gauntlet itself runs of the system under test, for the SUT watcher.
    pub fn embedded(&self) -> Embedded {
        // A bake-off keeps the embedded gateway running while it measures other targets:
        // it is under test only while the load goes to it.
        let gateway = self
            .gateway
            .as_ref()
            .map(GatewayHandle::url)
            .filter(|url| self.targets.contains(url));
        Embedded {
            gateway: gateway.map(|url| format!("{url}/metrics")),
            mocks: !self.mocks.is_empty(),
        }
    }
}

/// The parts of the system under test running inside gauntlet.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    /// The embedded gateway's `/metrics` URL, when it runs.
    pub gateway: Option<String>,
    pub mocks: bool,
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
            urls.get(index)
                .cloned()
                .ok_or_else(|| FleetError::NoUpstreamFor {
                    class: c.name.clone(),
                    model: c.model.clone(),
                })
        })
        .collect()
}
