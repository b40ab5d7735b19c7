//! gauntlet's own processes for the tests that run it as users do: a mock fleet and the
//! reference gateway as `gauntlet mock` and `gauntlet gateway`, `gauntlet` commands run to
//! their end, and what they leave in a run folder.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gauntlet::cluster::Part;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// `gauntlet mock` serving `primary` and `fallback` (one fast model `m`), and their URLs.
pub async fn mock_fleet_process(dir: &Path) -> (Child, Vec<String>) {
    std::fs::write(
        dir.join("p.toml"),
        "name = \"p\"\nseed = 3\n[[models]]\nname = \"m\"\ninput_price_per_m = 1.0\n\
         output_price_per_m = 2.0\n[latency]\nttft = \"2ms\"\ntokens_per_second = 5000\n",
    )
    .unwrap();
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[[providers]]\nname = \"primary\"\nprofile = \"p.toml\"\nport = 0\n\
         [[providers]]\nname = \"fallback\"\nprofile = \"p.toml\"\nport = 0\n",
    )
    .unwrap();
    mock_process(Path::new(BIN), &fleet, 2).await
}

/// `program` (the gauntlet binary, under whatever name) run as `gauntlet mock --config FLEET`
/// with `providers` providers, once it said where each listens: the child and their URLs.
pub async fn mock_process(program: &Path, fleet: &Path, providers: usize) -> (Child, Vec<String>) {
    let mut child = Command::new(program)
        .args(["mock", "--config"])
        .arg(fleet)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for _ in 0..providers {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the mock says where it listens")
            .unwrap()
            .expect("a line per provider");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        urls.push(v["url"].as_str().unwrap().to_string());
    }
    (child, urls)
}

/// `gauntlet gateway` routing `m` to primary, falling back to fallback; and its URL.
pub async fn gateway_process(dir: &Path, primary: &str, fallback: &str) -> (Child, String) {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "routes = [{{ model = \"m\", targets = [\"primary\"], fallbacks = [\"fallback\"] }}]\n\
             [[upstreams]]\nname = \"primary\"\nurl = \"{primary}\"\n\
             [[upstreams]]\nname = \"fallback\"\nurl = \"{fallback}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the gateway says where it listens")
            .unwrap()
            .expect("the gateway is still running");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Its later lines go nowhere; the pipe must not fill.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// How a `gauntlet` process ended: its exit code and what it wrote.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `gauntlet ARGS` with `env` and none of a shard's variables from the test's own
/// environment, to its end.
pub async fn gauntlet_cli(args: &[&str], env: &[(&str, String)]) -> Ran {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("GAUNTLET_SHARDS")
        .env_remove("GAUNTLET_COORDINATOR")
        .env_remove("GITHUB_STEP_SUMMARY")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The part a shard left in its run folder `dir`.
pub fn part_of(dir: &Path) -> Part {
    Part::decode(&std::fs::read(dir.join("part.gpart")).unwrap()).unwrap()
}
