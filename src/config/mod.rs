//! Shared configuration plumbing: located errors, readable units and distributions, the
//! checker and the rules every loader (mock profiles, gateway config, scenarios) shares, so
//! they all speak the same way.

mod check;
mod error;
mod secret;
mod units;

pub use check::{Check, MAX_NAME_LEN, MAX_WEIGHT, valid_name};
pub use error::{ConfigError, ConfigErrors, Location, MAX_CONFIG_BYTES, Source, did_you_mean};
pub use secret::Secret;
pub use units::{
    Dist, DurationDist, MAX_DURATION, RawDist, RawDistTable, RawNum, parse_duration, parse_ratio,
};
