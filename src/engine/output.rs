//! The engine's share of the run folder: the evidence of a finished run, its summary and its
//! latency histogram log, written through the folder's owner (`crate::rundir`).

use super::session::Finished;
use crate::rundir::{RunDir, RunDirError};

/// Writes `latency.hlog` and `summary.json`; the reports rendered from the summary are
/// `report`'s to write.
pub fn write_run(dir: &mut RunDir, run: &Finished) -> Result<(), RunDirError> {
    dir.write_hlog(&run.recorder, run.started_at)?;
    dir.write_summary(&run.summary)?;
    Ok(())
}
