//! Sharded runs, offline merge: a mock fleet and the reference gateway run as their own
//! processes; three `gauntlet run` processes each get the environment a Kubernetes Indexed
//! Job pod gets and send their slice; `gauntlet merge` makes one run of their parts. The
//! merged numbers are checked against a merge this test makes itself from the parts, and
//! against one process sending the whole schedule.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gauntlet::cluster::Part;
use gauntlet::metrics::{ClassInfo, Recorder, RunInfo, percentiles, summarize};

use crate::support::{gateway_process, gauntlet_cli, mock_fleet_process, part_of, summary_of};

/// Constant arrivals, so the schedule holds no randomness but the mix's seeded draws; a
/// primary outage that only shard 0 may play.
fn scenario(primary: &str, fallback: &str, gateway: &str) -> String {
    format!(
        r#"name = "sharded"
seed = 11
[target]
url = "{gateway}"
[[upstreams]]
name = "primary"
url = "{primary}"
[[upstreams]]
name = "fallback"
url = "{fallback}"
[load]
arrival = "constant"
warmup = "0s"
stages = [{{ duration = "4s", rate = 90 }}]
[[requests]]
name = "everyday"
weight = 80
model = "m"
prompt = "hello"
max_tokens = 16
stream = true
primary = "primary"
[[requests]]
name = "bulk"
weight = 15
model = "m"
prompt = "summarise"
max_tokens = 8
primary = "primary"
[[requests]]
name = "premium"
weight = 5
model = "m"
prompt = "think"
max_tokens = 24
stream = true
primary = "primary"
[[faults]]
upstream = "primary"
at = "1500ms"
duration = "1s"
kind = "error"
status = 503
[sla]
availability = "90%"
"#
    )
}

fn info(rec: &Recorder) -> RunInfo {
    RunInfo {
        scenario: "sharded".into(),
        description: None,
        seed: 11,
        target: String::new(),
        started_at: std::time::SystemTime::UNIX_EPOCH,
        ran_for: Duration::from_secs(4),
        interrupted: false,
        classes: rec
            .layout()
            .classes
            .iter()
            .map(|n| ClassInfo {
                name: n.clone(),
                weight: 1,
                model: "m".into(),
                stream: true,
                api: "chat",
                primary: None,
                tier: None,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shard_processes_merge_into_the_run_one_process_makes() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, urls) = mock_fleet_process(dir.path()).await;
    let (_gw, gw) = gateway_process(dir.path(), &urls[0], &urls[1]).await;
    let file = dir.path().join("sharded.toml");
    std::fs::write(&file, scenario(&urls[0], &urls[1], &gw)).unwrap();
    let file_s = file.to_str().unwrap();
    let shard_dir = |i: u32| dir.path().join(format!("shard-{i}"));

    // The three shards at once, as the pods of an Indexed Job start.
    let runs = futures_util::future::join_all((0..3u32).map(|i| {
        let out = shard_dir(i);
        async move {
            let out = out.to_str().unwrap().to_string();
            let env = [
                ("JOB_COMPLETION_INDEX", i.to_string()),
                ("GAUNTLET_SHARDS", "3".to_string()),
            ];
            gauntlet_cli(&["run", file_s, "-q", "--out", &out], &env).await
        }
    }))
    .await;
    for (i, r) in runs.iter().enumerate() {
        assert!(
            matches!(r.code, Some(0 | 1)),
            "shard {i} exit {:?}: {}",
            r.code,
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("shard {i}/3: part written")),
            "{}",
            r.stderr
        );
    }
    let parts: Vec<Part> = (0..3).map(|i| part_of(&shard_dir(i))).collect();
    // Only shard 0 played the fault.
    assert_eq!(parts[0].evidence.faults.len(), 1);
    assert!(parts[1].evidence.faults.is_empty() && parts[2].evidence.faults.is_empty());

    let merged_dir = dir.path().join("merged");
    let third = shard_dir(2).join("part.gpart");
    let merge = gauntlet_cli(
        &[
            "merge",
            shard_dir(0).to_str().unwrap(),
            shard_dir(1).to_str().unwrap(),
            third.to_str().unwrap(),
            "--out",
            merged_dir.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let merged = summary_of(&merged_dir, "");
    assert_eq!(
        merge.code,
        Some(if merged.sla.passed { 0 } else { 1 }),
        "{}",
        merge.stderr
    );
    for f in ["index.html", "summary.md", "junit.xml", "latency.hlog"] {
        assert!(merged_dir.join(f).is_file(), "no {f}");
    }

    // The test's own merge of the parts, through the library's decoder and Recorder::merge.
    let mut own = Recorder::new(parts[0].recording.layout().clone());
    for p in &parts {
        own.merge(&p.recording).unwrap();
    }
    let mine = summarize(&own, &info(&own));
    assert_eq!(merged.overall.requests, mine.overall.requests);
    assert_eq!(merged.overall.successes, mine.overall.successes);
    assert_eq!(merged.overall.latency_ms, mine.overall.latency_ms);
    assert_eq!(merged.overall.ttft_ms, mine.overall.ttft_ms);
    for (a, b) in merged.classes.iter().zip(&mine.classes) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.stats.requests, b.stats.requests, "{}", a.name);
        assert_eq!(a.stats.successes, b.stats.successes, "{}", a.name);
        assert_eq!(a.stats.errors, b.stats.errors, "{}", a.name);
        assert_eq!(a.stats.latency_ms, b.stats.latency_ms, "{}", a.name);
        assert_eq!(a.stats.ttft_ms, b.stats.ttft_ms, "{}", a.name);
    }
    // Every class's histograms: counts and percentiles of the sum of the shards'.
    for (i, c) in own.classes().iter().enumerate() {
        let shards: u64 = parts
            .iter()
            .map(|p| p.recording.classes()[i].latency.len())
            .sum();
        assert_eq!(c.latency.len(), shards);
        assert_eq!(percentiles(&c.latency), merged.classes[i].stats.latency_ms);
    }
    assert_eq!(merged.intervals.len(), mine.intervals.len());
    for (a, b) in merged.intervals.iter().zip(&mine.intervals) {
        assert_eq!(a.overall.requests, b.overall.requests, "interval {}", a.t_s);
        assert_eq!(
            a.overall.latency_ms, b.overall.latency_ms,
            "interval {}",
            a.t_s
        );
    }
    // The per-shard table: every shard, by its own numbers, adding up to the whole.
    assert_eq!(
        merged.shards.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let by_shard: u64 = merged.shards.iter().map(|s| s.requests).sum();
    assert_eq!(by_shard, merged.overall.requests);
    assert!(merge.stdout.contains("shard"), "{}", merge.stdout);
    let html = std::fs::read_to_string(merged_dir.join("index.html")).unwrap();
    assert!(html.contains("id=\"shards\""));
    // The upstream accounting is shard 0's, counting every shard's requests.
    assert!(
        merged
            .retry_amplification
            .is_some_and(|r| r > 0.9 && r < 2.5),
        "{:?}",
        merged.retry_amplification
    );

    // One process sending the whole schedule: the same requests, class by class.
    let whole_dir = dir.path().join("whole");
    let whole = gauntlet_cli(
        &["run", file_s, "-q", "--out", whole_dir.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(matches!(whole.code, Some(0 | 1)), "{}", whole.stderr);
    let single = summary_of(&whole_dir, "");
    assert_eq!(single.overall.requests, merged.overall.requests);
    assert!(
        single.overall.requests >= 300,
        "{}",
        single.overall.requests
    );
    let mix = |s: &gauntlet::metrics::Summary| {
        s.classes
            .iter()
            .map(|c| (c.name.clone(), c.stats.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(mix(&single), mix(&merged));
    let per_interval = |s: &gauntlet::metrics::Summary| {
        s.intervals
            .iter()
            .map(|i| i.overall.requests)
            .collect::<Vec<_>>()
    };
    assert_eq!(per_interval(&single), per_interval(&merged));

    refusals(dir.path(), &shard_dir).await;
}

/// Parts that do not belong together are refused with the reason (exit 2); a missing shard
/// makes the merged run inconclusive (exit 1), naming it.
async fn refusals(dir: &Path, shard_dir: &dyn Fn(u32) -> PathBuf) {
    let merge = |parts: Vec<PathBuf>, out: &str| {
        let out = dir.join(out);
        async move {
            let mut args: Vec<String> = vec!["merge".into()];
            args.extend(parts.iter().map(|p| p.to_str().unwrap().to_string()));
            args.extend(["--out".into(), out.to_str().unwrap().to_string()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (gauntlet_cli(&args, &[]).await, out)
        }
    };
    // A part of another seed, and one of another scenario.
    let altered = |what: &str, change: &dyn Fn(&mut Part)| {
        let mut p = part_of(&shard_dir(1));
        change(&mut p);
        let at = dir.join(format!("{what}.gpart"));
        std::fs::write(&at, p.encode()).unwrap();
        at
    };
    let seed = altered("seed", &|p| p.header.seed = 12);
    let (r, _) = merge(vec![shard_dir(0), seed, shard_dir(2)], "m-seed").await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("seeds differ") && r.stderr.contains("11") && r.stderr.contains("12"),
        "{}",
        r.stderr
    );
    let other = altered("scenario", &|p| {
        p.header.fingerprint = "0123456789abcdef".into()
    });
    let (r, _) = merge(vec![shard_dir(0), other, shard_dir(2)], "m-scenario").await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("scenarios differ"), "{}", r.stderr);
    let (r, _) = merge(vec![shard_dir(0), shard_dir(1), shard_dir(1)], "m-twice").await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("shard 1 comes twice"), "{}", r.stderr);
    let garbage = dir.join("garbage.gpart");
    std::fs::write(&garbage, b"GAUNTLET-PART\n\0\0\0\x01 not really").unwrap();
    let (r, _) = merge(vec![shard_dir(0), garbage], "m-garbage").await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    // Shard 2 never reported.
    let (r, out) = merge(vec![shard_dir(0), shard_dir(1)], "m-missing").await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let s = summary_of(&out, "");
    assert_eq!(s.sla.verdict, gauntlet::metrics::CheckStatus::Inconclusive);
    assert!(
        s.trust
            .reasons
            .iter()
            .any(|r| r.contains("shard 2 of 3 sent no part")),
        "{:?}",
        s.trust.reasons
    );
}

/// Flags, environment, and what the refusal must say.
type Refused<'a> = (&'a [&'a str], Vec<(&'a str, String)>, &'a str);

#[tokio::test]
async fn a_shard_outside_its_count_is_refused_naming_the_flag_or_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        scenario(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let cases: [Refused; 5] = [
        (
            &["--shard", "3/3"],
            vec![],
            "--shard: shard index 3 is out of range for 3 shards",
        ),
        (
            &["--shard", "0/0"],
            vec![],
            "--shard: the shard count must be at least 1",
        ),
        (
            &["--shard", "one/3"],
            vec![],
            "`one/3` is not a whole number",
        ),
        (
            &[],
            vec![
                ("JOB_COMPLETION_INDEX", "4".into()),
                ("GAUNTLET_SHARDS", "4".into()),
            ],
            "JOB_COMPLETION_INDEX=4, GAUNTLET_SHARDS=4: shard index 4 is out of range",
        ),
        (
            &[],
            vec![("JOB_COMPLETION_INDEX", "1".into())],
            "JOB_COMPLETION_INDEX is set but GAUNTLET_SHARDS is not",
        ),
    ];
    for (flags, env, want) in cases {
        let mut args = vec!["run", f, "-q", "--out", o];
        args.extend(flags);
        let r = gauntlet_cli(&args, &env).await;
        assert_eq!(r.code, Some(2), "{flags:?} {env:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "want {want}: {}", r.stderr);
        assert!(!out.exists(), "a refused shard leaves no run folder");
    }
}
