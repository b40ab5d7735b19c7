//! Scenario files: the serde schema, loading, and validation into typed values with errors
//! that name file:line:col, the key and the fix.

mod model;

pub use model::{
    Arrival, LoadPlan, Objective, RequestClass, Scenario, ScheduledFault, Scope, Secret, Sla,
    SlaTarget, Stage, StageLoad, Target, Upstream, UpstreamSource,
};
