//! MockFleet files (`mock-upstreams/fleet.toml`): which providers `gauntlet mock` starts, from
//! which profile, on which port.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Check, ConfigErrors, Source};

use super::profile::{Profile, valid_name};

/// One provider to start.
#[derive(Debug, Clone)]
pub struct FleetEntry {
    pub name: String,
    /// The profile file, resolved against the fleet file's directory.
    pub profile_path: PathBuf,
    pub profile: Profile,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, the control API requires this token.
    pub admin_token: Option<String>,
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
    profile: Spanned<String>,
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
            let profile_path = base.join(e.profile.get_ref());
            match Profile::load(&profile_path) {
                Ok(profile) => providers.push(FleetEntry {
                    name: name.clone(),
                    profile_path,
                    profile,
                    port: e.port,
                    admin_token,
                }),
                Err(errs) => {
                    // A missing file is best reported where the fleet names it.
                    let missing = !profile_path.is_file();
                    if missing {
                        check.error(
                            e.profile.span(),
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
        assert_eq!(f.providers[0].profile.models[0].output_price_per_m, 2.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
