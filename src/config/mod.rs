//! Shared configuration plumbing: located errors, readable units and distributions, used by
//! every loader (mock profiles, gateway config, scenarios) so they all speak the same way.

mod error;
mod units;

pub use error::{ConfigError, ConfigErrors, Location, MAX_CONFIG_BYTES, Source, did_you_mean};
pub use units::{
    Check, Dist, DurationDist, MAX_DURATION, RawDist, RawDistTable, RawNum, parse_duration,
    parse_ratio,
};
