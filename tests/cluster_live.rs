//! The live sharded run (`gauntlet run` with the environment a Kubernetes Indexed Job pod
//! gets): real processes on loopback, shard 0 as the coordinator. Runs are short and slow
//! enough (a few seconds, 60 requests a second in all) for a loaded 2-core machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gauntlet::cluster::merge_parts;
use gauntlet::metrics::Summary;

use crate::support::part_of;

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

const PROFILE: &str = r#"name = "fast"
seed = 1
[[models]]
name = "m"
input_price_per_m = 0.1
output_price_per_m = 0.2
[latency]
ttft = "5ms"
tokens_per_second = 2000
[completion]
tokens = 8
"#;

/// A scenario with two mocks and the embedded gateway, constant arrivals (so a shard's
/// slice is exact), `seconds` long.
fn scenario(dir: &Path, seed: u64, seconds: u32) -> PathBuf {
    std::fs::write(dir.join("fast.toml"), PROFILE).unwrap();
    let text = format!(
        r#"name = "live-shards"
seed = {seed}
[[upstreams]]
name = "primary"
profile = "fast.toml"
[[upstreams]]
name = "fallback"
profile = "fast.toml"
[gateway]
routes = [{{ model = "m", targets = ["primary"], fallbacks = ["fallback"] }}]
[load]
arrival = "constant"
stages = [{{ duration = "{seconds}s", rate = 60 }}]
[[requests]]
name = "chat"
weight = 80
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
[[requests]]
name = "bulk"
weight = 20
model = "m"
prompt = "hello there"
max_tokens = 4
[sla]
# The gateway on a loaded machine may refuse a connection now and then; what is tested
# is the protocol, not the gateway.
availability = "90%"
"#
    );
    let path = dir.join(format!("s{seed}-{seconds}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Shard `index` of `count`, configured as a pod is: by environment only.
fn shard(scenario: &Path, out: &Path, coordinator: &str, index: u32, count: u32) -> Child {
    shard_with(scenario, out, coordinator, index, count, &[])
}

fn shard_with(
    scenario: &Path,
    out: &Path,
    coordinator: &str,
    index: u32,
    count: u32,
    args: &[&str],
) -> Child {
    Command::new(BIN)
        .arg("run")
        .arg(scenario)
        .arg("-q")
        .args(args)
        .arg("--out")
        .arg(out)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .env("GAUNTLET_SHARDS", count.to_string())
        .env("GAUNTLET_COORDINATOR", coordinator)
        .env("GAUNTLET_WAIT_FOR_SHARDS", "60s")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

fn summary(dir: &Path) -> Summary {
    let (s, _) = gauntlet::rundir::RunDir::load(dir).unwrap();
    s
}

#[test]
fn three_shards_pass_with_one_merged_verdict_equal_to_the_merge_of_their_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 11, 4);
    let addr = format!("127.0.0.1:{}", free_port());
    let outs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("o{i}"))).collect();
    let children: Vec<Child> = (0..3)
        .map(|i| shard(&s, &outs[i], &addr, i as u32, 3))
        .collect();
    let ends: Vec<_> = children.into_iter().map(finish).collect();
    // The other shards delivered their parts.
    for (i, (code, text)) in ends.iter().enumerate().skip(1) {
        assert_eq!(*code, Some(0), "shard {i}:\n{text}");
    }
    let merged = summary(&outs[0]);
    // The merged verdict passes, unless the machine was so loaded that a generator fell
    // behind its schedule (lag over the single-machine bound): then it is inconclusive for
    // that reason alone, never because a shard was lost.
    let (code, text) = &ends[0];
    let behind = |r: &String| r.contains("fell behind") || r.contains("schedule lag");
    match merged.sla.verdict {
        gauntlet::metrics::CheckStatus::Pass => assert_eq!(*code, Some(0), "{text}"),
        gauntlet::metrics::CheckStatus::Inconclusive if merged.trust.reasons.iter().all(behind) => {
            assert_eq!(*code, Some(1), "{text}");
            eprintln!(
                "note: the machine was too loaded for a pass: {:?}",
                merged.trust.reasons
            );
        }
        _ => panic!("expected a pass:\n{text}"),
    }
    // One row per shard, each with its clock measured.
    assert_eq!(merged.shards.len(), 3, "{:?}", merged.shards);
    for row in &merged.shards[1..] {
        let rtt = row.rtt_ms.unwrap();
        assert!(rtt > 0.0 && rtt < 1000.0, "{row:?}");
        assert!(row.clock_offset_ms.unwrap().abs() < 1000.0, "{row:?}");
    }
    assert!(ends[0].1.contains("shards:"), "{}", ends[0].1);
    // The coordinator's merge equals the merge of the shards' own parts, every count and
    // every percentile.
    let parts = outs
        .iter()
        .map(|o| (o.display().to_string(), part_of(o)))
        .collect();
    let offline = merge_parts(parts).unwrap();
    let scenario = gauntlet::scenario::load(&s).unwrap();
    let again = gauntlet::cluster::conclude_merged(&offline, &scenario);
    assert_eq!(merged.overall, again.overall);
    assert_eq!(merged.classes, again.classes);
    assert_eq!(merged.intervals, again.intervals);
    // The same scenario and seed on one machine: the same requests, class by class.
    let single = tmp.path().join("single");
    let done = Command::new(BIN)
        .arg("run")
        .arg(&s)
        .args(["-q", "--out"])
        .arg(&single)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let one = summary(&single);
    assert_eq!(merged.overall.requests, one.overall.requests);
    let counts = |s: &Summary| {
        s.classes
            .iter()
            .map(|c| (c.name.clone(), c.stats.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&merged), counts(&one));
}

#[test]
fn a_killed_shard_makes_the_run_inconclusive_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 12, 8);
    let addr = format!("127.0.0.1:{}", free_port());
    let out = |i: u32| tmp.path().join(format!("o{i}"));
    let coordinator = shard(&s, &out(0), &addr, 0, 3);
    let one = shard(&s, &out(1), &addr, 1, 3);
    let mut two = shard(&s, &out(2), &addr, 2, 3);
    // Killed once the load runs (it made its run folder just before the start).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out(2).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    two.kill().unwrap();
    let _ = two.wait();
    let (code, text) = finish(coordinator);
    let _ = finish(one);
    assert_eq!(code, Some(1), "{text}");
    let merged = summary(&out(0));
    assert_eq!(
        merged.sla.verdict,
        gauntlet::metrics::CheckStatus::Inconclusive
    );
    assert!(
        merged
            .trust
            .reasons
            .iter()
            .any(|r| r.starts_with("shard 2:") && r.contains("no push")),
        "{:?}",
        merged.trust.reasons
    );
    let row = merged.shards.iter().find(|r| r.index == 2).unwrap();
    assert!(row.note.is_some(), "{row:?}");
    // What it did push before it died is in the merged run.
    assert!(row.requests > 0, "{row:?}");
}

#[test]
fn shards_stop_on_their_own_and_keep_their_parts_when_the_coordinator_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 13, 60);
    let addr = format!("127.0.0.1:{}", free_port());
    let out = |i: u32| tmp.path().join(format!("o{i}"));
    let mut coordinator = shard(&s, &out(0), &addr, 0, 2);
    let one = shard(&s, &out(1), &addr, 1, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out(1).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    coordinator.kill().unwrap();
    let _ = coordinator.wait();
    let killed = Instant::now();
    let (code, text) = finish(one);
    // Its 60 s plan would run 55 s more; it stops within the bound (8 s of failed pushes,
    // then the drain and its own reports), with room for a loaded machine.
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("went away"), "{text}");
    let kept = part_of(&out(1));
    assert_eq!(kept.header.shard.index, 1);
    assert!(
        kept.recording
            .classes()
            .iter()
            .any(|c| !c.latency.is_empty())
    );
}

#[test]
fn shards_with_another_seed_or_scenario_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = scenario(tmp.path(), 14, 2);
    let theirs = scenario(tmp.path(), 14, 3);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut coordinator = Command::new(BIN)
        .arg("run")
        .arg(&ours)
        .args([
            "-q",
            "--shard",
            "0/2",
            "--coordinator",
            &addr,
            "--wait-for-shards",
            "30s",
        ])
        .arg("--out")
        .arg(tmp.path().join("o0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seeded = shard_with(
        &ours,
        &tmp.path().join("o1"),
        &addr,
        1,
        2,
        &["--seed", "15"],
    );
    let (seed_code, seed_text) = finish(seeded);
    let stranger = shard(&theirs, &tmp.path().join("o2"), &addr, 1, 2);
    let (code, text) = finish(stranger);
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    assert_eq!(seed_code, Some(2), "{seed_text}");
    assert!(
        seed_text.contains("refused") && seed_text.contains("seed 15 differs"),
        "{seed_text}"
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("refused") && text.contains("scenario fingerprint"),
        "{text}"
    );
}

#[test]
fn a_coordinator_address_that_is_not_gauntlet_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 16, 2);
    // Any other HTTP server: it answers, but not as a coordinator.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_mock, url) = runtime.block_on(async {
        let upstream = crate::support::upstream("other").await;
        let url = upstream.url();
        (upstream, url)
    });
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (code, text) = finish(shard(&s, &tmp.path().join("o1"), &addr, 1, 2));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not a gauntlet coordinator"), "{text}");
}

#[test]
fn a_coordinator_whose_shards_never_come_names_them_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 17, 2);
    let addr = format!("127.0.0.1:{}", free_port());
    let coordinator = shard_with(
        &s,
        &tmp.path().join("o0"),
        &addr,
        0,
        3,
        &["--wait-for-shards", "2s"],
    );
    let (code, text) = finish(coordinator);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("shards 1, 2 did not register"), "{text}");
}

#[test]
fn live_exporters_are_refused_in_a_sharded_run_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let s = scenario(tmp.path(), 18, 2);
    let addr = format!("127.0.0.1:{}", free_port());
    let cases: [(&[&str], &str); 2] = [
        (&["--metrics-listen", "127.0.0.1:0"], "--metrics-listen"),
        (&["--otlp", "http://127.0.0.1:9"], "--otlp"),
    ];
    for (args, flag) in cases {
        // The coordinator and a shard alike: neither could serve the whole run's numbers.
        for index in [0, 1] {
            let out = tmp.path().join(format!("o{index}"));
            let (code, text) = finish(shard_with(&s, &out, &addr, index, 2, args));
            assert_eq!(code, Some(2), "{flag}, shard {index}:\n{text}");
            assert!(
                text.contains(flag) && text.contains("sharded run"),
                "{flag}, shard {index}:\n{text}"
            );
            assert!(!out.exists(), "refused before anything was written");
        }
    }
}
