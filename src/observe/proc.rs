//! Reading a process from /proc (through the `procfs` crate): its CPU seconds, resident
//! memory, open descriptors and threads, the CPU of its threads by name, and finding a
//! process by name.

use procfs::process::Process;

/// What /proc says of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcReading {
    /// User plus system CPU time of every thread it ever ran (exited ones included).
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// None when /proc/PID/fd is not ours to list.
    pub fds: Option<u64>,
    pub threads: u64,
}

/// One thread's identity and CPU time.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    pub tid: i32,
    pub name: String,
    pub cpu_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("observe.pid = {pid}: cannot read /proc/{pid}: {reason}")]
    Pid { pid: u32, reason: String },
    #[error(
        "observe.process = {name:?}: no running process has that name (looked at every \
         /proc/*/comm and command line); start it first, or give its `pid`"
    )]
    NoProcess { name: String },
    #[error(
        "observe.process = {name:?}: {} processes have that name (pids {}); set `pid` to the \
         one to watch", pids.len(), pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous { name: String, pids: Vec<u32> },
    #[error("observe.process = {name:?}: cannot list the processes in /proc: {reason}")]
    List { name: String, reason: String },
}

fn seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second().max(1) as f64
}

/// A process that is there and readable now; the error names the field that gave the pid.
pub fn open(pid: u32) -> Result<Process, WatchError> {
    let err = |reason: String| WatchError::Pid { pid, reason };
    let id = i32::try_from(pid).map_err(|_| err("not a Linux process id".into()))?;
    let p = Process::new(id).map_err(|e| err(e.to_string()))?;
    read(&p).map_err(|e| err(e.to_string()))?;
    Ok(p)
}

pub fn read(p: &Process) -> procfs::ProcResult<ProcReading> {
    let stat = p.stat()?;
    Ok(ProcReading {
        cpu_s: seconds(stat.utime + stat.stime),
        rss_bytes: stat.rss.saturating_mul(procfs::page_size()),
        fds: p.fd_count().ok().map(|n| n as u64),
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    })
}

/// Every thread of `p` with its CPU time; a thread that exits while being read is skipped.
pub fn threads(p: &Process) -> procfs::ProcResult<Vec<ThreadCpu>> {
    Ok(p.tasks()?
        .filter_map(Result::ok)
        .filter_map(|t| {
            let stat = t.stat().ok()?;
            Some(ThreadCpu {
                tid: t.tid,
                name: stat.comm,
                cpu_s: seconds(stat.utime + stat.stime),
            })
        })
        .collect())
}

/// The one process, other than this one, called `name`: its comm (the kernel keeps 15
/// bytes), its program's file name, or the script an interpreter runs (`python litellm`).
pub fn find(name: &str) -> Result<u32, WatchError> {
    let me = std::process::id();
    let list = procfs::process::all_processes().map_err(|e| WatchError::List {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    let comm: String = name.chars().take(15).collect();
    let mut pids: Vec<u32> = list
        .filter_map(Result::ok)
        .filter(|p| u32::try_from(p.pid).is_ok_and(|pid| pid != me))
        .filter(|p| {
            let by_comm = p.stat().is_ok_and(|s| s.comm == comm);
            by_comm || p.cmdline().is_ok_and(|args| runs_program(&args, name))
        })
        .filter_map(|p| u32::try_from(p.pid).ok())
        .collect();
    pids.sort_unstable();
    match pids.as_slice() {
        [] => Err(WatchError::NoProcess {
            name: name.to_string(),
        }),
        [one] => Ok(*one),
        _ => Err(WatchError::Ambiguous {
            name: name.to_string(),
            pids,
        }),
    }
}

/// Whether a command line runs `name`: as its program, or as the script its interpreter
/// was given first.
fn runs_program(args: &[String], name: &str) -> bool {
    let file = |a: &String| a.rsplit('/').next().map(str::to_string);
    let program = args.first().and_then(file);
    if program.as_deref() == Some(name) {
        return true;
    }
    let interpreted = program.is_some_and(|p| {
        [
            "python", "node", "ruby", "perl", "bash", "sh", "java", "uv", "bun", "deno",
        ]
        .iter()
        .any(|i| p.starts_with(i))
    });
    interpreted
        && args
            .iter()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .and_then(file)
            .is_some_and(|script| script == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_plausibly() {
        let me = open(std::process::id()).unwrap();
        let r = read(&me).unwrap();
        assert!(r.rss_bytes > 1 << 20, "{r:?}");
        assert!(r.threads >= 1);
        assert!(r.fds.is_some_and(|n| n >= 3), "{r:?}");
        let threads = threads(&me).unwrap();
        assert!(!threads.is_empty());
    }

    #[test]
    fn a_missing_pid_names_the_field() {
        let e = open(i32::MAX as u32).unwrap_err().to_string();
        assert!(
            e.starts_with("observe.pid = 2147483647: cannot read /proc/"),
            "{e}"
        );
    }

    #[test]
    fn programs_and_interpreted_scripts_are_matched_by_file_name() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(runs_program(
            &args(&["/usr/bin/litellm", "--port", "4000"]),
            "litellm"
        ));
        assert!(runs_program(
            &args(&["/usr/bin/python3.12", "/usr/local/bin/litellm", "--port"]),
            "litellm"
        ));
        assert!(!runs_program(
            &args(&["/usr/bin/python3", "-m", "http.server"]),
            "litellm"
        ));
        assert!(!runs_program(
            &args(&["/usr/bin/vim", "litellm"]),
            "litellm"
        ));
        assert!(!runs_program(&args(&[]), "litellm"));
    }
}
