//! What request classes send: datasets, synthetic prompts, per-request budgets, tools and
//! extra fields, and conversations; validated with the scenario, drawn by the engine.

mod dataset;
mod feed;
mod spec;
mod synth;

pub use dataset::{
    Dataset, DatasetError, DatasetFormat, IN_MEMORY_LIMIT, ROLES, check_object, check_tools,
};
pub use feed::{Conversation, Draft, Feed};
pub use spec::{Order, PromptSource, SessionSpec, Workload};
pub use synth::synthetic_text;
