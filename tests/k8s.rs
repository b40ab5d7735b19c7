//! `gauntlet k8s`: the manifests it prints validate against the Kubernetes schema (strict, at
//! 1.33, the first version where `backoffLimitPerIndex` is GA), say what a sharded run needs
//! (Indexed, N pods at once, no retries, a headless Service naming pod 0, non-root), carry a
//! scenario that still validates from where the pods mount it, and equal the committed
//! `deploy/k8s/` output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The Kubernetes version the manifests are checked against: 1.33 made
/// `backoffLimitPerIndex` GA, so older clusters may refuse it.
const K8S_VERSION: &str = "1.33.0";
/// Run as `python3 -m`, so where pip put its scripts does not matter.
const VALIDATOR: &str = "kubernetes_validate";
const COMMITTED: &str = "deploy/k8s/quickstart-4.yaml";
const IMAGE: &str = "gauntlet:0.1.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn gauntlet_k8s(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("k8s")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn manifests(args: &[&str]) -> String {
    let out = gauntlet_k8s(args);
    assert!(
        out.status.success(),
        "gauntlet k8s {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every document, as PyYAML reads it (the parser kubernetes-validate uses).
fn documents(yaml: &str) -> Vec<Value> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), yaml).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(tmp.path())
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for this test and could not start: {e}"));
    assert!(
        out.status.success(),
        "the manifests do not parse as YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among the manifests"))
}

/// kubernetes-validate's verdict on `yaml`: its exit status and what it printed.
fn validate(yaml: &str) -> (bool, String) {
    let tmp = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(tmp.path(), yaml).unwrap();
    let out = Command::new("python3")
        .args(["-m", VALIDATOR, "--strict", "--no-warn", "-k", K8S_VERSION])
        .arg(tmp.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 cannot run ({e}); the test needs it with kubernetes-validate (.ci/run installs both)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(&format!("No module named {VALIDATOR}")),
        "the {VALIDATOR} Python package is missing: pip install kubernetes-validate \
         (.ci/run does)"
    );
    (out.status.success(), text)
}

fn env_of(container: &Value, name: &str) -> String {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the container's env"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schema_in_strict_mode() {
    for args in [
        vec![
            "scenarios/quickstart.toml",
            "--shards",
            "4",
            "--image",
            IMAGE,
        ],
        vec![
            "scenarios/trace-replay.toml",
            "--shards",
            "2",
            "--image",
            "registry.example.com/team/gauntlet:0.1.0",
            "--namespace",
            "load",
            "--port",
            "9000",
            "--pvc",
            "gauntlet-runs",
        ],
    ] {
        let yaml = manifests(&args);
        let (ok, text) = validate(&yaml);
        assert!(ok, "{args:?} fails validation:\n{text}");
    }
    // The check has teeth: strict mode refuses a field the schema does not know, and the
    // schema refuses a wrong type.
    let yaml = manifests(&[
        "scenarios/quickstart.toml",
        "--shards",
        "4",
        "--image",
        IMAGE,
    ]);
    for (from, to) in [
        (
            "  backoffLimitPerIndex: 0",
            "  backoffLimitPerIndex: 0\n  retries: 0",
        ),
        ("  parallelism: 4", "  parallelism: four"),
    ] {
        assert!(yaml.contains(from), "{from} missing from the manifests");
        let (ok, text) = validate(&yaml.replacen(from, to, 1));
        assert!(!ok, "{VALIDATOR} accepted {to:?}:\n{text}");
    }
}

#[test]
fn the_job_runs_every_shard_at_once_without_retries_and_names_pod_0_as_the_coordinator() {
    for (n, port) in [(3, None), (4, Some("7171"))] {
        let shards = n.to_string();
        let mut args = vec![
            "scenarios/quickstart.toml",
            "--shards",
            &shards,
            "--image",
            IMAGE,
        ];
        if let Some(p) = port {
            args.extend(["--port", p]);
        }
        let docs = documents(&manifests(&args));
        let job = kind(&docs, "Job");
        let service = kind(&docs, "Service");
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], n);
        assert_eq!(spec["parallelism"], n);
        assert_eq!(spec["backoffLimitPerIndex"], 0);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(service["spec"]["clusterIP"], "None");
        // Pod 0 is JOB-0 under the Service's subdomain: the name the shards dial.
        let job_name = job["metadata"]["name"].as_str().unwrap();
        let service_name = service["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod["subdomain"], service_name);
        let port = port.unwrap_or("7070");
        let container = &pod["containers"][0];
        assert_eq!(
            env_of(container, "GAUNTLET_COORDINATOR"),
            format!("{job_name}-0.{service_name}:{port}")
        );
        assert_eq!(env_of(container, "GAUNTLET_SHARDS"), shards);
        assert_eq!(service["spec"]["ports"][0]["port"].to_string(), port);
        // The Service selects the Job's pods.
        let selector = service["spec"]["selector"].as_object().unwrap();
        let pod_labels = &spec["template"]["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(
                &pod_labels[k], v,
                "the Service's selector {k} misses the pods"
            );
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(container["image"], IMAGE);
        // Requests from the plan, and no CPU limit (throttling would skew the measurements).
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert!(container["resources"]["limits"].get("cpu").is_none());
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            ["run", "/etc/gauntlet/quickstart.toml", "--out", "/out"]
        );
    }
}

#[test]
fn the_scenario_in_the_config_map_validates_where_the_pods_mount_it() {
    let docs = documents(&manifests(&[
        "scenarios/quickstart.toml",
        "--shards",
        "2",
        "--image",
        IMAGE,
    ]));
    let config = kind(&docs, "ConfigMap");
    let data = config["data"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    for key in [
        "quickstart.toml",
        "deepseek-v4-flash.toml",
        "qwen3-32b.toml",
        "deepseek-r1.toml",
    ] {
        assert!(
            keys.contains(&key),
            "{key} missing from the ConfigMap: {keys:?}"
        );
    }
    // The files mounted in a folder of our own, standing in for /etc/gauntlet.
    let mount = tempfile::tempdir().unwrap();
    for (key, text) in data {
        let text = text
            .as_str()
            .unwrap()
            .replace("/etc/gauntlet/", &format!("{}/", mount.path().display()));
        std::fs::write(mount.path().join(key), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("validate")
        .arg(mount.path().join("quickstart.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the mounted scenario does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its profiles are the repository's, byte for byte.
    assert_eq!(
        data["deepseek-r1.toml"].as_str().unwrap(),
        std::fs::read_to_string(repo().join("mock-upstreams/deepseek-r1.toml")).unwrap()
    );
}

#[test]
fn the_committed_quickstart_manifests_are_what_the_command_prints_now() {
    let now = manifests(&[
        "scenarios/quickstart.toml",
        "--shards",
        "4",
        "--image",
        IMAGE,
    ]);
    let committed = std::fs::read_to_string(repo().join(COMMITTED)).unwrap_or_default();
    assert!(
        now == committed,
        "{COMMITTED} is stale; regenerate it:\n  gauntlet k8s scenarios/quickstart.toml \
         --shards 4 --image {IMAGE} > {COMMITTED}"
    );
}

fn refused(args: &[&str], says: &[&str]) {
    let out = gauntlet_k8s(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed manifests anyway");
    for s in says {
        assert!(stderr.contains(s), "{args:?}: {s:?} not in: {stderr}");
    }
}

#[test]
fn bad_input_is_refused_with_exit_2_naming_what_is_wrong() {
    let q = "scenarios/quickstart.toml";
    refused(&[q, "--shards", "0", "--image", IMAGE], &["--shards 0"]);
    refused(
        &[q, "--shards", "2", "--image", "my image"],
        &["--image", "my image"],
    );
    refused(
        &[
            q,
            "--shards",
            "2",
            "--image",
            IMAGE,
            "--namespace",
            "Load_Tests",
        ],
        &["--namespace", "Load_Tests"],
    );
    refused(
        &[
            q,
            "--shards",
            "2",
            "--image",
            IMAGE,
            "--name",
            "x".repeat(70).as_str(),
        ],
        &["--name"],
    );
    // A target on loopback would be the pod itself.
    refused(
        &[
            "scenarios/external-gateway.toml",
            "--shards",
            "2",
            "--image",
            IMAGE,
        ],
        &["target.url", "127.0.0.1:4000"],
    );

    let tmp = tempfile::tempdir().unwrap();
    let broken = write_scenario(tmp.path(), "broken.toml", "rate = \"fast\"", None);
    refused(
        &[broken.to_str().unwrap(), "--shards", "2", "--image", IMAGE],
        &["broken.toml:"],
    );
    // A dataset past what a ConfigMap holds is named.
    let big = tmp.path().join("prompts.txt");
    let line = "Summarise the following paragraph in one sentence, please.\n";
    std::fs::write(&big, line.repeat(1024 * 1024 / line.len() + 10)).unwrap();
    let scenario = write_scenario(tmp.path(), "big.toml", "rate = 5", Some("prompts.txt"));
    refused(
        &[
            scenario.to_str().unwrap(),
            "--shards",
            "2",
            "--image",
            IMAGE,
        ],
        &["prompts.txt", "ConfigMap"],
    );
}

/// A small scenario against the repository's zero-latency profile; `load` goes into `[load]`.
fn write_scenario(dir: &Path, name: &str, load: &str, dataset: Option<&str>) -> PathBuf {
    let profile = repo().join("mock-upstreams/zero-latency.toml");
    let prompt = match dataset {
        Some(d) => format!("dataset = \"{d}\""),
        None => "prompt = \"hi\"".into(),
    };
    let text = format!(
        "name = \"small\"\n[[upstreams]]\nname = \"a\"\nprofile = {profile:?}\n\
         [gateway]\nroutes = [{{ model = \"m\", targets = [\"a\"] }}]\n\
         [load]\nduration = \"5s\"\n{load}\n\
         [[requests]]\nname = \"r\"\nmodel = \"m\"\n{prompt}\nmax_tokens = 8\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
