//! Scenario files: the serde schema, loading, and validation into typed values with errors
//! that name file:line:col, the key and the fix.

mod compile;
mod faults;
mod load;
mod model;
mod raw;
mod sla;

pub use compile::{load, load_str};
pub use load::MAX_RATE;
pub use model::{
    Arrival, LoadPlan, Objective, RequestClass, Scenario, ScheduledFault, Scope, Secret, Sla,
    SlaTarget, Stage, StageLoad, Target, Upstream, UpstreamSource,
};
pub use raw::RawScenario;

/// The JSON Schema of the scenario format, for editors (taplo, VS Code Even Better TOML).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawScenario)).unwrap_or(serde_json::Value::Null)
}
