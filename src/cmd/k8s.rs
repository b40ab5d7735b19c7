//! `gauntlet k8s SCENARIO --shards N --image IMG`: print the Kubernetes manifests of a sharded
//! run.

use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;

use gauntlet::k8s::{self, K8sOptions};

use super::{InvalidInput, Outcome};

/// Print the Kubernetes manifests of a sharded run (multi-document YAML, for `kubectl apply -f -`).
///
/// What it prints:
///   ConfigMap  the scenario and every profile, trace, dataset and certificate it references,
///              paths rewritten to /etc/gauntlet/ where each pod mounts them (a private key
///              goes to a Secret); a file too big for a ConfigMap (1 MiB) is refused, named
///   Service    headless (clusterIP: None): pod 0, the coordinator, is NAME-0.NAME in DNS
///   Job        Indexed, parallelism = completions = N, backoffLimitPerIndex: 0 (a restarted
///              shard would corrupt the schedule); each pod runs
///                gauntlet run /etc/gauntlet/SCENARIO.toml --out /out
///              with GAUNTLET_SHARDS=N and GAUNTLET_COORDINATOR=NAME-0.NAME:PORT (Kubernetes
///              sets JOB_COMPLETION_INDEX); resource requests sized from the plan (CPU from the
///              per-shard arrival rate or users, memory from the connections a pod can hold;
///              the rule is written beside them), no CPU limit; uid 65532, read-only root
///
/// The run's results: pod 0's exit code is the verdict, and its log has the summary and the
/// per-shard table:
///   kubectl logs -l batch.kubernetes.io/job-name=NAME,batch.kubernetes.io/job-completion-index=0
/// The run folders are in an emptyDir per pod, gone with the pod; with --pvc CLAIM each shard
/// writes shard-INDEX/ of that claim, the merged run folder in shard-0/ (README: "Running
/// sharded on Kubernetes" shows how to copy it out).
///
/// Exit 2 on bad input: N = 0, a scenario that does not validate, a target or upstream on
/// loopback (in a pod that is the pod itself), a name Kubernetes would refuse.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The scenario file (TOML); it must validate.
    pub scenario: PathBuf,
    /// Pods (shards) of the run, 1 or more; pod 0 is the coordinator.
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// The gauntlet image every pod runs, as your cluster pulls it (deploy/image/build.sh
    /// builds one), e.g. registry.example.com/gauntlet:0.1.0.
    #[arg(long, value_name = "IMG")]
    pub image: String,
    /// Namespace of every object [default: kubectl's current one].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Port the coordinator (pod 0) listens on for the shards.
    #[arg(long, value_name = "P", default_value_t = NonZeroU16::new(k8s::DEFAULT_PORT).unwrap_or(NonZeroU16::MIN))]
    pub port: NonZeroU16,
    /// Write the run folders to this PersistentVolumeClaim (ReadWriteMany when the pods land
    /// on several nodes), each shard under shard-INDEX/, instead of an emptyDir per pod.
    #[arg(long, value_name = "CLAIM")]
    pub pvc: Option<String>,
    /// Name of the Job and the Service [default: gauntlet-<scenario name>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let shards = NonZeroU32::new(args.shards).ok_or_else(|| {
        InvalidInput("--shards 0: a run needs at least one shard (pod 0 is the coordinator)".into())
    })?;
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    let opts = K8sOptions {
        shards,
        image: args.image,
        namespace: args.namespace,
        port: args.port,
        pvc: args.pvc,
        name: args.name,
    };
    let text = k8s::manifests(&args.scenario, &scenario, &opts)
        .map_err(|e| InvalidInput(e.to_string()))?;
    print!("{text}");
    Ok(Outcome::Ok)
}
