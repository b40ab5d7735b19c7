//! What a running recording gained since it was last asked: a second recorder fed the same
//! samples, handed over and replaced by an empty one on each take, so a shard can stream its
//! run interval by interval and the takes, merged, are exactly the whole.

use std::sync::{Arc, Mutex, PoisonError};

use super::recorder::{Layout, Recorder};

/// Shared by the recorder task (which feeds it) and whoever takes the deltas.
#[derive(Debug, Clone)]
pub struct RecordingDeltas(Arc<Mutex<Recorder>>);

impl RecordingDeltas {
    pub fn new(layout: Layout) -> Self {
        Self(Arc::new(Mutex::new(Recorder::new(layout))))
    }

    /// Runs `f` on the recording of the current delta.
    pub fn with<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        // A panic while recording leaves a recording that is still whole up to the sample
        // that panicked: keep taking from it.
        let mut rec = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut rec)
    }

    /// Everything recorded since the last take; the next delta starts empty.
    pub fn take(&self) -> Recorder {
        self.with(|rec| {
            let fresh = Recorder::new(rec.layout().clone());
            std::mem::replace(rec, fresh)
        })
    }
}
