//! What one pod of a sharded run asks the scheduler for, from the plan: CPU from the requests
//! per second it sends (and, on shard 0, serves through the embedded mocks and gateway),
//! memory from the connections it can hold open. The rule is written into the manifest.

use std::num::NonZeroU32;

use crate::scenario::{LoadPlan, Scenario, StageLoad, Target, UpstreamSource};

/// The process's own floor: runtimes, the recorder's per-interval histograms, the reports.
const BASE_CPU_MILLI: u64 = 250;
const BASE_MEMORY_MIB: u64 = 128;
/// Sending and measuring streamed requests (TLS, SSE parsing, histograms): one core per
/// this many requests per second.
const SENT_PER_CORE: f64 = 1000.0;
/// The embedded gateway and mocks handle every request of the run once each.
const SERVED_PER_CORE: f64 = 1000.0;
/// Socket buffers, the connection's state and its request: per open connection.
const CONNECTION_KIB: u64 = 64;
/// A closed-model user waits for each answer; streamed answers take a quarter second at
/// the quickest, so a user sends at most this many requests per second.
const USER_RATE: f64 = 4.0;

/// Requests of one pod of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sSizing {
    pub cpu_milli: u64,
    pub memory_mib: u64,
    /// The rule and the numbers it was applied to, for a comment in the manifest.
    pub rule: String,
}

pub fn size(scenario: &Scenario, shards: NonZeroU32) -> K8sSizing {
    let n = f64::from(shards.get());
    let load = &scenario.load;
    let cap = load.max_in_flight.get() as u64;
    let (rate, conns, load_text) = match peak(load) {
        Peak::Rate(total) => {
            let rate = total / n;
            // Little's law at the worst: every request held until its timeout.
            let held = (rate * load.timeout.as_secs_f64()).ceil() as u64;
            let conns = held.min(cap).max(1);
            (
                rate,
                conns,
                format!(
                    "peak arrival rate {} req/s over {} shards = {} req/s per shard; \
                     connections min(max_in_flight {cap}, rate x timeout {} s) = {conns}",
                    num(total),
                    shards,
                    num(rate),
                    num(load.timeout.as_secs_f64())
                ),
            )
        }
        Peak::Users(total) => {
            let users = total.div_ceil(u64::from(shards.get()));
            let rate = users as f64 * USER_RATE;
            (
                rate,
                users.max(1),
                format!(
                    "{total} users over {shards} shards = {users} per shard, each at most \
                     {} req/s = {} req/s; one connection per user",
                    num(USER_RATE),
                    num(rate)
                ),
            )
        }
    };
    let fleet = embedded_fleet(scenario);
    let served = if fleet { rate * n } else { 0.0 };
    let cpu_milli = BASE_CPU_MILLI
        + (rate / SENT_PER_CORE * 1000.0).ceil() as u64
        + (served / SERVED_PER_CORE * 1000.0).ceil() as u64;
    // The gateway holds a client and an upstream connection per request, the mock one more.
    let fleet_conns = if fleet {
        3 * conns * u64::from(shards.get())
    } else {
        0
    };
    let memory_mib = BASE_MEMORY_MIB + ((conns + fleet_conns) * CONNECTION_KIB).div_ceil(1024);
    let fleet_text = if fleet {
        format!(
            "\nshard 0 also runs the embedded mocks and gateway for the whole run ({} req/s, \
             3 x {} connections), and one pod template serves every shard, so each asks for that",
            num(served),
            conns * u64::from(shards.get())
        )
    } else {
        String::new()
    };
    let rule = format!(
        "Sized from the plan: cpu = {BASE_CPU_MILLI}m + 1 core per {} req/s sent{}; memory = \
         {BASE_MEMORY_MIB}Mi + {CONNECTION_KIB}Ki per connection held.\n{load_text}{fleet_text}\n\
         No CPU limit: throttling would show as schedule lag and skew the measurements.",
        num(SENT_PER_CORE),
        if fleet {
            format!(" + 1 core per {} req/s served", num(SERVED_PER_CORE))
        } else {
            String::new()
        },
    );
    K8sSizing {
        cpu_milli,
        memory_mib,
        rule,
    }
}

enum Peak {
    /// Arrivals per second of the whole run.
    Rate(f64),
    /// Closed-model users of the whole run.
    Users(u64),
}

/// The busiest moment of the plan.
fn peak(load: &LoadPlan) -> Peak {
    let mut rate: f64 = 0.0;
    let mut users: u64 = 0;
    for stage in &load.stages {
        match &stage.load {
            StageLoad::Rate { from, to } => rate = rate.max(from.max(*to)),
            StageLoad::Concurrency(u) => users = users.max(u.get() as u64),
            StageLoad::Trace(trace) => {
                // The trace's busiest second.
                let mut per_second: std::collections::BTreeMap<u64, u64> = Default::default();
                for line in &trace.lines {
                    *per_second.entry(line.at.as_secs()).or_default() += 1;
                }
                let busiest = per_second.values().copied().max().unwrap_or(0);
                rate = rate.max(busiest as f64);
            }
        }
    }
    if users > 0 && rate == 0.0 {
        Peak::Users(users)
    } else {
        Peak::Rate(rate)
    }
}

/// Whether shard 0 starts mocks or the reference gateway in its own process.
fn embedded_fleet(scenario: &Scenario) -> bool {
    matches!(scenario.target, Target::EmbeddedGateway(_))
        || scenario
            .upstreams
            .iter()
            .any(|u| !matches!(u.source, UpstreamSource::Url { .. }))
}

/// A number for people: whole when it is, else up to two decimals.
fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(load: &str, embedded: bool) -> Scenario {
        let fleet = if embedded {
            "[[upstreams]]\nname = \"a\"\nprofile = \"../mock-upstreams/zero-latency.toml\"\n\
             [gateway]\nroutes = [{ model = \"m\", targets = [\"a\"] }]\n"
        } else {
            "[target]\nurl = \"http://gw:8080\"\n[[upstreams]]\nname = \"a\"\nurl = \"http://m:1\"\n"
        };
        let text = format!(
            "name = \"s\"\n{fleet}[load]\n{load}\n[[requests]]\nname = \"r\"\nmodel = \"m\"\n\
             prompt = \"hi\"\nmax_tokens = 8\n"
        );
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/s.toml");
        crate::scenario::load_str(dir, text).unwrap()
    }

    #[test]
    fn cpu_follows_the_per_shard_rate_and_memory_the_connections() {
        let s = scenario(
            "stages = [{ duration = \"10s\", from = 100, to = 4000 }]\ntimeout = \"1s\"",
            false,
        );
        let four = size(&s, NonZeroU32::new(4).unwrap());
        // 1000 req/s per shard: 250m + 1000m; 1000 connections (1000 x 1 s) of 64 KiB.
        assert_eq!(four.cpu_milli, 1250);
        assert_eq!(four.memory_mib, 128 + 63);
        assert!(four.rule.contains("1000 req/s per shard"), "{}", four.rule);
        let eight = size(&s, NonZeroU32::new(8).unwrap());
        assert_eq!(eight.cpu_milli, 750);
    }

    #[test]
    fn connections_stop_at_the_in_flight_cap_and_shard_0_carries_the_fleet() {
        let s = scenario("duration = \"5s\"\nrate = 400\nmax_in_flight = 50", true);
        let sz = size(&s, NonZeroU32::new(2).unwrap());
        // 200 req/s sent per shard, 400 served by the fleet; 50 + 3 x 100 connections.
        assert_eq!(sz.cpu_milli, 250 + 200 + 400);
        assert_eq!(sz.memory_mib, 128 + (350u64 * 64).div_ceil(1024));
        assert!(
            sz.rule.contains("embedded mocks and gateway"),
            "{}",
            sz.rule
        );
    }

    #[test]
    fn closed_users_are_dealt_out_and_each_is_one_connection() {
        let s = scenario(
            "duration = \"5s\"\nmodel = \"closed\"\nconcurrency = 10",
            false,
        );
        let sz = size(&s, NonZeroU32::new(3).unwrap());
        // ceil(10 / 3) = 4 users of at most 4 req/s.
        assert_eq!(sz.cpu_milli, 250 + 16);
        assert_eq!(sz.memory_mib, 128 + 1);
    }
}
