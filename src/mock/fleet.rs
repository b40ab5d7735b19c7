//! MockFleet files (`mock-upstreams/fleet.toml`): which providers `gauntlet mock` starts, from
//! which profile (or, for a fault proxy, in front of which real provider), on which port.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Check, ConfigErrors, Source};

use super::profile::{Profile, valid_name};

/// One provider to start.
#[derive(Debug, Clone)]
pub struct FleetEntry {
    pub name: String,
    pub source: FleetSource,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, the control API requires this token.
    pub admin_token: Option<String>,
}

/// What answers a provider's requests.
#[derive(Debug, Clone)]
pub enum FleetSource {
    /// A mock scripted by this profile (the file resolved against the fleet file's folder).
    Profile {
        path: PathBuf,
        profile: Box<Profile>,
    },
    /// A fault proxy forwarding to this provider URL, with this key in place of the client's.
    Proxy {
        url: String,
        api_key: Option<crate::config::Secret>,
    },
}

#[derive(Debug, Clone)]
pub struct MockFleet {
    pub providers: Vec<FleetEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    providers: Spanned<Vec<Spanned<RawEntry>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Spanned<String>,
    profile: Option<Spanned<String>>,
    /// A fault proxy in front of this real provider instead of a scripted mock.
    proxy_to: Option<Spanned<String>>,
    /// The provider key a proxy sends (a literal or "env:NAME").
    api_key: Option<Spanned<String>>,
    #[serde(default)]
    port: u16,
    admin_token: Option<Spanned<String>>,
}

impl MockFleet {
    /// Reads the fleet file and every profile it names; errors in profiles keep their own
    /// file:line:col, so one run reports everything there is to fix.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let src = Source::read(path)?;
        let raw: RawFleet = src.parse_toml()?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut check = Check::new(&src);
        let mut providers: Vec<FleetEntry> = Vec::new();
        if raw.providers.get_ref().is_empty() {
            check.error(
                raw.providers.span(),
                "providers",
                "list at least one provider",
            );
        }
        for (i, e) in raw.providers.get_ref().iter().enumerate() {
            let e = e.get_ref();
            let name = e.name.get_ref();
            if !valid_name(name) {
                check.error(
                    e.name.span(),
                    format!("providers[{i}].name"),
                    format!("{name:?} is not a valid name; use letters, digits, '-', '_' or '.'"),
                );
            } else if providers.iter().any(|p| &p.name == name) {
                check.error(
                    e.name.span(),
                    format!("providers[{i}].name"),
                    format!("provider {name:?} is listed twice"),
                );
            }
            if e.port != 0 && providers.iter().any(|p| p.port == e.port) {
                check.error(
                    e.name.span(),
                    format!("providers[{i}].port"),
                    format!("port {} is used twice", e.port),
                );
            }
            let admin_token = match &e.admin_token {
                Some(t) if t.get_ref().is_empty() => {
                    check.error(
                        t.span(),
                        format!("providers[{i}].admin_token"),
                        "must not be empty (leave it out for no token)",
                    );
                    None
                }
                Some(t) => Some(t.get_ref().clone()),
                None => None,
            };
            let key = |k: &str| format!("providers[{i}].{k}");
            let profile = match (&e.profile, &e.proxy_to) {
                (Some(p), None) => {
                    if let Some(k) = &e.api_key {
                        check.error(
                            k.span(),
                            key("api_key"),
                            "only a proxy (`proxy_to`) sends a key; a mock needs none",
                        );
                    }
                    p
                }
                (None, Some(url)) => {
                    if let Err(m) = super::provider::check_url(url.get_ref()) {
                        check.error(url.span(), key("proxy_to"), m);
                    }
                    let api_key = e
                        .api_key
                        .as_ref()
                        .and_then(|k| check.secret(k, &key("api_key")));
                    providers.push(FleetEntry {
                        name: name.clone(),
                        source: FleetSource::Proxy {
                            url: url.get_ref().clone(),
                            api_key,
                        },
                        port: e.port,
                        admin_token,
                    });
                    continue;
                }
                (Some(_), Some(url)) => {
                    check.error(
                        url.span(),
                        key("proxy_to"),
                        "set either `profile` (a scripted mock) or `proxy_to` (a fault proxy in \
                         front of a real provider), not both",
                    );
                    continue;
                }
                (None, None) => {
                    check.error(
                        e.name.span(),
                        format!("providers[{i}]"),
                        "needs `profile = \"path/to/profile.toml\"` or `proxy_to = \"https://...\"`",
                    );
                    continue;
                }
            };
            let profile_path = base.join(profile.get_ref());
            match Profile::load(&profile_path) {
                Ok(profile) => providers.push(FleetEntry {
                    name: name.clone(),
                    source: FleetSource::Profile {
                        path: profile_path,
                        profile: Box::new(profile),
                    },
                    port: e.port,
                    admin_token,
                }),
                Err(errs) => {
                    // A missing file is best reported where the fleet names it.
                    let missing = !profile_path.is_file();
                    if missing {
                        check.error(
                            profile.span(),
                            format!("providers[{i}].profile"),
                            format!("no profile file at {}", profile_path.display()),
                        );
                    } else {
                        for err in errs.0 {
                            check.push(err);
                        }
                    }
                }
            }
        }
        check.finish(MockFleet { providers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_profiles_relative_to_the_fleet_file() {
        let dir = std::env::temp_dir().join(format!("gauntlet-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("p.toml"),
            "name = \"p\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("fleet.toml"),
            "[[providers]]\nname = \"a\"\nprofile = \"p.toml\"\n\
             [[providers]]\nname = \"b\"\nprofile = \"missing.toml\"\n",
        )
        .unwrap();
        let e = MockFleet::load(&dir.join("fleet.toml")).unwrap_err();
        assert!(
            e.to_string()
                .contains("fleet.toml:6:11: `providers[1].profile`"),
            "{e}"
        );
        std::fs::write(
            dir.join("fleet.toml"),
            "[[providers]]\nname = \"a\"\nprofile = \"p.toml\"\nport = 0\n",
        )
        .unwrap();
        let f = MockFleet::load(&dir.join("fleet.toml")).unwrap();
        let FleetSource::Profile { profile, .. } = &f.providers[0].source else {
            panic!("a profile");
        };
        assert_eq!(profile.models[0].output_price_per_m, 2.0);
        std::fs::write(
            dir.join("fleet.toml"),
            "[[providers]]\nname = \"openai\"\nproxy_to = \"https://api.openai.com\"\n\
             api_key = \"sk-test\"\n[[providers]]\nname = \"bad\"\nproxy_to = \"ftp://x\"\n",
        )
        .unwrap();
        let e = MockFleet::load(&dir.join("fleet.toml")).unwrap_err();
        assert!(
            e.to_string()
                .contains("fleet.toml:7:12: `providers[1].proxy_to`"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
