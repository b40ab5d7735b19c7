//! `gauntlet capacity`: the highest arrival rate at which every SLA check still passes, with
//! the scenario's faults (and, asked, without them), each probe a normal run judged by
//! statistical tests rather than point estimates.

mod interval;
mod judge;
mod result;
mod run;
mod search;

pub use interval::{Position, Z_95, side, wilson};
pub use judge::{CheckJudgement, ProbeJudgement, Verdict, judge};
pub use result::{
    CAPACITY_SCHEMA_VERSION, CapacityResult, Probe, Purpose, SearchResult, StopReason,
};
pub use run::{CapacityError, Observer, Settings, check, search};
pub use search::{Bounds, Search, Settled, Step};
