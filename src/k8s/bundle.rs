//! The files a pod needs to run a scenario: the scenario itself with every path it names
//! rewritten to where the files are mounted, and each profile, trace, dataset and certificate
//! it references, under a ConfigMap key of its own (a private key under a Secret's).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::K8sError;
use crate::scenario::RawScenario;

/// What the API server accepts in one ConfigMap or Secret: the keys and values together.
pub const OBJECT_LIMIT: usize = 1024 * 1024;

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sFile {
    /// Its name in the mounted folder (a valid ConfigMap key).
    pub key: String,
    pub contents: Vec<u8>,
    /// Where it was read from, for messages.
    pub source: PathBuf,
    /// A private key: it goes into a Secret, not the ConfigMap.
    pub secret: bool,
}

/// The scenario (first) and the files it references, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sBundle {
    pub files: Vec<K8sFile>,
}

impl K8sBundle {
    pub fn scenario_key(&self) -> &str {
        self.files
            .first()
            .map_or("scenario.toml", |f| f.key.as_str())
    }
}

/// A path value in the scenario text: where it is written, and whether it is secret.
struct PathRef {
    span: Range<usize>,
    written: String,
    secret: bool,
}

/// Reads the scenario at `path` and every file it references, rewriting the references to
/// `mount/KEY`. Fails when a file cannot be read or the ConfigMap or Secret would be too big.
pub fn bundle(path: &Path, mount: &str) -> Result<K8sBundle, K8sError> {
    let text = std::fs::read_to_string(path).map_err(|source| K8sError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let raw: RawScenario = toml::from_str(&text).map_err(|e| K8sError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let scenario_key = key_for(path, &BTreeMap::new());
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    taken.insert(scenario_key.clone(), path.to_path_buf());
    let mut by_source: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut files = Vec::new();
    let mut edits = Vec::new();
    for r in path_refs(&raw) {
        let source = dir.join(&r.written);
        // The same file named twice (two upstreams sharing a profile) is bundled once.
        let identity = std::fs::canonicalize(&source).unwrap_or_else(|_| source.clone());
        let key = match by_source.get(&identity) {
            Some(key) => key.clone(),
            None => {
                let contents = std::fs::read(&source).map_err(|e| K8sError::Read {
                    path: source.clone(),
                    source: e,
                })?;
                let key = key_for(&source, &taken);
                taken.insert(key.clone(), source.clone());
                by_source.insert(identity, key.clone());
                files.push(K8sFile {
                    key: key.clone(),
                    contents,
                    source: source.clone(),
                    secret: r.secret,
                });
                key
            }
        };
        edits.push((r.span, format!("{mount}/{key}")));
    }
    // From the end, so the earlier spans stay where they were.
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut rewritten = text;
    for (span, new) in edits {
        // A JSON string is a valid TOML basic string.
        let quoted = serde_json::to_string(&new).unwrap_or_default();
        rewritten.replace_range(span, &quoted);
    }
    files.insert(
        0,
        K8sFile {
            key: scenario_key,
            contents: rewritten.into_bytes(),
            source: path.to_path_buf(),
            secret: false,
        },
    );
    let bundle = K8sBundle { files };
    check_size(&bundle, false, "ConfigMap")?;
    check_size(&bundle, true, "Secret")?;
    Ok(bundle)
}

/// Every value of the scenario that names a file, in the order written.
fn path_refs(raw: &RawScenario) -> Vec<PathRef> {
    let mut refs = Vec::new();
    let mut add = |s: &Option<Spanned<String>>, secret: bool| {
        if let Some(s) = s {
            refs.push(PathRef {
                span: s.span(),
                written: s.get_ref().clone(),
                secret,
            });
        }
    };
    for u in &raw.upstreams {
        add(&u.get_ref().profile, false);
    }
    if let Some(load) = &raw.load {
        add(&load.get_ref().trace, false);
    }
    for class in raw.classes() {
        add(&class.get_ref().dataset, false);
    }
    if let Some(tls) = &raw.tls {
        add(&tls.ca_cert, false);
        add(&tls.client_cert, false);
        add(&tls.client_key, true);
    }
    refs.sort_by_key(|r| r.span.start);
    refs
}

/// The file's name as a ConfigMap key (`[-._a-zA-Z0-9]`), made unique among `taken` with a
/// number before the extension.
fn key_for(path: &Path, taken: &BTreeMap<String, PathBuf>) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    key.truncate(200);
    if key.is_empty() || key.chars().all(|c| c == '.') {
        key = "file".into();
    }
    if !taken.contains_key(&key) {
        return key;
    }
    let (stem, ext) = match key.rfind('.') {
        Some(dot) if dot > 0 => (key[..dot].to_string(), key[dot..].to_string()),
        _ => (key.clone(), String::new()),
    };
    (2..)
        .map(|n| format!("{stem}-{n}{ext}"))
        .find(|k| !taken.contains_key(k))
        .unwrap_or(key)
}

fn check_size(bundle: &K8sBundle, secret: bool, kind: &'static str) -> Result<(), K8sError> {
    let files: Vec<&K8sFile> = bundle.files.iter().filter(|f| f.secret == secret).collect();
    for f in &files {
        let size = f.key.len() + f.contents.len();
        if size > OBJECT_LIMIT {
            return Err(K8sError::FileTooBig {
                path: f.source.clone(),
                kind,
                size: f.contents.len(),
                limit: OBJECT_LIMIT,
            });
        }
    }
    let size: usize = files.iter().map(|f| f.key.len() + f.contents.len()).sum();
    if size > OBJECT_LIMIT {
        let mut by_size = files.clone();
        by_size.sort_by_key(|f| std::cmp::Reverse(f.contents.len()));
        let largest = by_size
            .iter()
            .take(3)
            .map(|f| format!("{} ({} bytes)", f.source.display(), f.contents.len()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(K8sError::BundleTooBig {
            kind,
            size,
            limit: OBJECT_LIMIT,
            largest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const SCENARIO: &str = r#"
name = "x"
[[upstreams]]
name = "a"
profile = "../profiles/p.toml"
[[upstreams]]
name = "b"
profile = '../profiles/p.toml'
[[upstreams]]
name = "c"
profile = "other/p.toml"
[tls]
client_key = "k.pem"
"#;

    #[test]
    fn references_are_bundled_once_under_unique_keys_and_rewritten_to_the_mount() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "profiles/p.toml", "first");
        write(tmp.path(), "s/other/p.toml", "second");
        write(tmp.path(), "s/k.pem", "secret");
        let scenario = write(tmp.path(), "s/x.toml", SCENARIO);
        let b = bundle(&scenario, "/etc/gauntlet").unwrap();
        let keys: Vec<_> = b.files.iter().map(|f| (f.key.as_str(), f.secret)).collect();
        assert_eq!(
            keys,
            [
                ("x.toml", false),
                ("p.toml", false),
                ("p-2.toml", false),
                ("k.pem", true)
            ]
        );
        assert_eq!(b.files[2].contents, b"second");
        let text = String::from_utf8(b.files[0].contents.clone()).unwrap();
        let raw: RawScenario = toml::from_str(&text).unwrap();
        let profiles: Vec<_> = raw
            .upstreams
            .iter()
            .map(|u| u.get_ref().profile.as_ref().unwrap().get_ref().clone())
            .collect();
        assert_eq!(
            profiles,
            [
                "/etc/gauntlet/p.toml",
                "/etc/gauntlet/p.toml",
                "/etc/gauntlet/p-2.toml"
            ]
        );
        assert_eq!(
            raw.tls.unwrap().client_key.unwrap().get_ref(),
            "/etc/gauntlet/k.pem"
        );
        // Everything else is left as written, comments included.
        assert!(text.contains("name = \"c\"\n"));
    }

    #[test]
    fn a_file_too_big_for_a_config_map_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "profiles/p.toml", &"x".repeat(OBJECT_LIMIT));
        write(tmp.path(), "s/other/p.toml", "");
        write(tmp.path(), "s/k.pem", "");
        let scenario = write(tmp.path(), "s/x.toml", SCENARIO);
        let e = bundle(&scenario, "/m").unwrap_err().to_string();
        assert!(
            e.contains("profiles/p.toml") && e.contains("ConfigMap"),
            "{e}"
        );
    }

    #[test]
    fn files_too_big_together_are_refused_naming_the_largest() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "profiles/p.toml", &"x".repeat(OBJECT_LIMIT / 2));
        write(tmp.path(), "s/other/p.toml", &"y".repeat(OBJECT_LIMIT / 2));
        write(tmp.path(), "s/k.pem", "");
        let scenario = write(tmp.path(), "s/x.toml", SCENARIO);
        let e = bundle(&scenario, "/m").unwrap_err().to_string();
        assert!(e.contains("add up to") && e.contains("other/p.toml"), "{e}");
    }
}
