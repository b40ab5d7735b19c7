//! Running one scenario on many machines: which slice a shard sends (`ShardId`), the part file
//! a shard leaves (its whole recording, exactly), and the exact merge of parts into one run
//! with one verdict (`gauntlet merge`, and the coordinator's live merge).

mod merge;
mod part;
mod shard_id;

pub use merge::{
    Merged, PartMerger, PartsError, WriteError, conclude_merged, inconclusive, merge_parts,
    write_merged,
};
pub use part::{
    CounterRecord, FaultOutcomeRecord, FaultRecord, PART_FORMAT, Part, PartError, PartHeader,
    PriceRecord, ShardEvidence, convert, file_fingerprint, fingerprint, fnv1a,
};
pub use shard_id::{COORDINATOR_ENV, COUNT_ENV, INDEX_ENV, ShardId, ShardIdError};
