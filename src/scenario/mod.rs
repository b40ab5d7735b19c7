//! Scenario files: the serde schema, loading, and validation into typed values with errors
//! that name file:line:col, the key and the fix.

mod budget;
mod capacity;
mod compile;
mod faults;
mod load;
mod model;
mod observe;
mod probe;
mod raw;
mod sla;
mod tls;
mod trace;
mod workload;

pub use capacity::TOLERANCE_RANGE;
pub use compile::{load, load_str};
pub use load::MAX_RATE;
pub use model::{
    Alternative, Arrival, Budget, BurnAlert, CapacitySettings, DirectBaseline, LoadPlan, Objective,
    Observe, PerRequest, ProbeSettings, ProxyPrice, RequestClass, Scenario, ScheduledFault, Scope,
    Secret, Sla, SlaKey, SlaTarget, Stage, StageLoad, Target, Trace, TraceLine, Unit, Upstream,
    UpstreamSource, WatchedProcess,
};
pub use probe::MAX_PROBE_RATE;
pub use raw::RawScenario;

/// The JSON Schema of the scenario format, for editors (taplo, VS Code Even Better TOML).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawScenario)).unwrap_or_default();
    strip_null(&mut schema);
    schema
}

/// TOML has no null: an optional key is simply left out, so the schema must not offer `null`.
fn strip_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any.len() == 1 {
                    let only = any.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(inner) = only {
                        for (k, val) in inner {
                            map.entry(k).or_insert(val);
                        }
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}
