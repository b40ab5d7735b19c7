//! What can be wrong with a `gauntlet k8s` request: every case is the user's input (exit 2).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The scenario validated a moment ago; its text no longer parses (it changed meanwhile).
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "{}: {size} bytes, more than a {kind} holds ({limit} bytes); \
         the pods read the scenario's files from one, so make the file smaller (or serve a \
         dataset from an image or volume of your own)",
        path.display()
    )]
    FileTooBig {
        path: PathBuf,
        kind: &'static str,
        size: usize,
        limit: usize,
    },
    #[error(
        "the scenario and the files it references add up to {size} bytes, more than a {kind} \
         holds ({limit} bytes); the largest: {largest}"
    )]
    BundleTooBig {
        kind: &'static str,
        size: usize,
        limit: usize,
        largest: String,
    },
    #[error("{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "{field} = {url:?} is loopback: in a pod that is the pod itself; name the service \
         by its cluster DNS name (e.g. http://gateway.NAMESPACE:8080)"
    )]
    Loopback { field: String, url: String },
}
