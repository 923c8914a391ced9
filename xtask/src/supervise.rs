//! Supervision of the processes `up` runs, kept apart from cargo and from the services so
//! that it can be tested with any program.
//!
//! [`start`] starts a list of processes in order and waits until each is ready. If one
//! cannot be started, exits, or is not ready in time, it stops every process it started
//! before it returns the [`Failure`]. [`Started::run_until`] then watches them until a
//! stop is requested or one of them exits. Stopping sends SIGTERM to every process still
//! running, waits for each, and kills (SIGKILL) any that has not exited after the grace
//! period; a [`Started`] that is dropped stops its processes the same way, so that no
//! early return, panic or cancelled start-up leaves one running.
//!
//! Each process's stdout and stderr are copied line by line to `<log dir>/<name>.log`
//! (without colour codes) and, when asked, to the terminal with the name before each
//! line.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A process to start.
#[derive(Debug)]
pub struct Launch {
    /// Names the process in messages, in its log file's name and before its lines.
    pub name: String,
    /// The program, its arguments and environment; stdin, stdout and stderr are set by
    /// [`start`].
    pub command: Command,
}

/// How long supervision waits, and where output goes.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// For every process to be ready, counted from when the last one was started.
    pub ready_within: Duration,
    /// Between readiness checks, and between checks that the processes still run.
    pub poll: Duration,
    /// Between SIGTERM and SIGKILL when stopping.
    pub stop_grace: Duration,
    /// Copy each output line to the terminal too (tests keep it quiet).
    pub echo: bool,
}

/// How a process ended when supervision stopped it.
#[derive(Debug)]
pub struct Stopped {
    /// The process's name.
    pub name: String,
    /// Its process id, for looking it up afterwards.
    pub pid: u32,
    /// Its exit status, or why it could not be waited for.
    pub status: Result<ExitStatus, String>,
}

/// Why supervision gave up: the process that failed, and everything it stopped.
#[derive(Debug)]
pub struct Failure {
    /// The process that failed.
    pub name: String,
    /// What happened to it, e.g. "exited during start-up (exit status: 2)".
    pub reason: String,
    /// Its log file, when it was started.
    pub log: Option<PathBuf>,
    /// The last lines of that log.
    pub tail: Vec<String>,
    /// Every process that was started, the failed one included, after stopping.
    pub stopped: Vec<Stopped>,
}

/// Lines of the failed process's log that a [`Failure`] shows.
const TAIL_LINES: usize = 15;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.reason)?;
        if let Some(log) = &self.log {
            write!(f, "; its output is in {}", log.display())?;
        }
        if !self.tail.is_empty() {
            write!(f, ", ending with:")?;
            for line in &self.tail {
                write!(f, "\n  | {line}")?;
            }
        }
        if !self.stopped.is_empty() {
            let stopped: Vec<String> = self
                .stopped
                .iter()
                .map(|s| match &s.status {
                    Ok(status) => format!("{} ({status})", s.name),
                    Err(e) => format!("{} (not waited for: {e})", s.name),
                })
                .collect();
            write!(f, "\nstopped everything started: {}", stopped.join(", "))?;
        }
        Ok(())
    }
}

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    copiers: Vec<JoinHandle<()>>,
}

/// The processes started; dropping it stops them.
pub struct Started {
    processes: Vec<Process>,
    supervision: Supervision,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<(&str, u32)> = self.processes.iter().map(|p| (p.name.as_str(), p.child.id())).collect();
        f.debug_struct("Started").field("processes", &names).finish_non_exhaustive()
    }
}

/// Starts `launches` in order, then waits until `ready(name)` has said yes for every one
/// of them. On any failure every process started is stopped (see the module doc) before
/// the failure is returned; logs go to `log_dir`, which is created if missing.
pub async fn start<F, Fut>(
    launches: Vec<Launch>,
    log_dir: &Path,
    supervision: &Supervision,
    mut ready: F,
) -> Result<Started, Failure>
where
    F: FnMut(&str) -> Fut,
    Fut: Future<Output = bool>,
{
    let width = launches.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let mut started = Started { processes: Vec::new(), supervision: supervision.clone() };
    if let Err(e) = std::fs::create_dir_all(log_dir) {
        let name = launches.first().map(|l| l.name.clone()).unwrap_or_default();
        return Err(started.fail(name, format!("has nowhere to log: cannot create {}: {e}", log_dir.display()), None));
    }
    for launch in launches {
        let name = launch.name.clone();
        match spawn(launch, log_dir, width, supervision.echo) {
            Ok(process) => started.processes.push(process),
            Err(reason) => return Err(started.fail(name, reason, None)),
        }
    }
    let deadline = Instant::now() + supervision.ready_within;
    let mut is_ready = vec![false; started.processes.len()];
    loop {
        if let Some((index, reason)) = started.first_exited("during start-up") {
            return Err(started.fail_at(index, reason));
        }
        for (index, flag) in is_ready.iter_mut().enumerate() {
            if !*flag && let Some(process) = started.processes.get(index) {
                *flag = ready(&process.name).await;
            }
        }
        // An exited process may have looked ready through another one on its port.
        if let Some((index, reason)) = started.first_exited("during start-up") {
            return Err(started.fail_at(index, reason));
        }
        if is_ready.iter().all(|r| *r) {
            return Ok(started);
        }
        if Instant::now() >= deadline {
            let index = is_ready.iter().position(|r| !*r).unwrap_or(0);
            let reason = format!("was not ready within {} s", supervision.ready_within.as_secs_f32());
            return Err(started.fail_at(index, reason));
        }
        tokio::time::sleep(supervision.poll).await;
    }
}

impl Started {
    /// The names of the processes, in start order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.processes.iter().map(|p| p.name.as_str())
    }

    /// Watches the processes until `stop` resolves (`Ok`; they are still running) or one
    /// of them exits (`Err`, after stopping all the others).
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) -> Result<(), Failure> {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(self.supervision.poll) => {
                    if let Some((index, reason)) = self.first_exited("while running") {
                        return Err(self.fail_at(index, reason));
                    }
                }
            }
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after the grace period) and waits for
    /// each. Blocks the calling thread for up to the grace period.
    pub fn stop(&mut self) -> Vec<Stopped> {
        let processes = std::mem::take(&mut self.processes);
        for process in &processes {
            terminate(&process.child);
        }
        let deadline = Instant::now() + self.supervision.stop_grace;
        processes
            .into_iter()
            .map(|mut process| {
                let status = wait_until(&mut process.child, deadline);
                // The copiers end when the process's pipes close; a grandchild holding
                // them open is not waited for.
                let until = Instant::now() + Duration::from_millis(500);
                for copier in process.copiers {
                    while !copier.is_finished() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if copier.is_finished() {
                        let _ = copier.join();
                    }
                }
                Stopped { name: process.name, pid: process.child.id(), status }
            })
            .collect()
    }

    /// The first process that is no longer running, and how it ended.
    fn first_exited(&mut self, when: &str) -> Option<(usize, String)> {
        self.processes.iter_mut().enumerate().find_map(|(index, process)| match process.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some((index, format!("exited {when} ({status})"))),
            Err(e) => Some((index, format!("cannot be watched: {e}"))),
        })
    }

    fn fail_at(&mut self, index: usize, reason: String) -> Failure {
        let (name, log) = self.processes.get(index).map(|p| (p.name.clone(), Some(p.log.clone()))).unwrap_or_default();
        self.fail(name, reason, log)
    }

    fn fail(&mut self, name: String, reason: String, log: Option<PathBuf>) -> Failure {
        let stopped = self.stop();
        let tail = log.as_deref().map(tail_of).unwrap_or_default();
        Failure { name, reason, log, tail, stopped }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if !self.processes.is_empty() {
            self.stop();
        }
    }
}

fn spawn(mut launch: Launch, log_dir: &Path, width: usize, echo: bool) -> Result<Process, String> {
    let log = log_dir.join(format!("{}.log", launch.name));
    let file = File::create(&log).map_err(|e| format!("has nowhere to log: cannot create {}: {e}", log.display()))?;
    let mut child = launch
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not be started ({:?}): {e}", launch.command.get_program()))?;
    let file = Arc::new(Mutex::new(file));
    let mut copiers = Vec::new();
    let label = format!("{:<width$} | ", launch.name);
    if let Some(out) = child.stdout.take() {
        copiers.push(copy_lines(out, label.clone(), file.clone(), echo.then_some(Terminal::Stdout)));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(copy_lines(err, label, file, echo.then_some(Terminal::Stderr)));
    }
    Ok(Process { name: launch.name, child, log, copiers })
}

#[derive(Clone, Copy)]
enum Terminal {
    Stdout,
    Stderr,
}

/// Copies `source` line by line to the log file and, prefixed by `label`, to the
/// terminal, until it closes.
fn copy_lines(
    source: impl Read + Send + 'static,
    label: String,
    log: Arc<Mutex<File>>,
    terminal: Option<Terminal>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let shown = format!("{label}{text}\n");
            // A closed terminal must not stop the process's log.
            let _ = match terminal {
                Some(Terminal::Stdout) => std::io::stdout().lock().write_all(shown.as_bytes()),
                Some(Terminal::Stderr) => std::io::stderr().lock().write_all(shown.as_bytes()),
                None => Ok(()),
            };
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{}", without_colours(text));
            }
        }
    })
}

/// `text` without ANSI escape sequences (the services colour their log lines).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
        } else if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    plain
}

/// Sends SIGTERM to `child` if it is still running (and not yet waited for, so that its
/// process id cannot belong to another process), so that it can shut down cleanly.
fn terminate(child: &Child) {
    // std has no SIGTERM and this workspace forbids `unsafe`: kill(1) sends it.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` until `deadline`, then kills it and waits for it.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                return child.wait().map_err(|e| e.to_string());
            }
        }
    }
}

/// The last [`TAIL_LINES`] lines of `log`.
fn tail_of(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].iter().map(|l| l.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn supervision() -> Supervision {
        Supervision {
            ready_within: Duration::from_secs(5),
            poll: Duration::from_millis(20),
            stop_grace: Duration::from_secs(5),
            echo: false,
        }
    }

    /// A fresh, empty log directory for one test.
    fn log_dir() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xtask-supervise-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn launch(name: &str, program: &str, args: &[&str]) -> Launch {
        let mut command = Command::new(program);
        command.args(args);
        Launch { name: name.to_string(), command }
    }

    fn healthy(name: &str) -> Launch {
        launch(name, "sleep", &["30"])
    }

    fn shell(name: &str, script: &str) -> Launch {
        launch(name, "sh", &["-c", script])
    }

    /// Whether a process with this id exists and is not a zombie (an exited process
    /// nobody waited for).
    fn is_running(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses.
            Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z'),
            Err(_) => false,
        }
    }

    fn assert_all_stopped(stopped: &[Stopped], names: &[&str]) {
        let stopped_names: Vec<&str> = stopped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(stopped_names, names);
        for s in stopped {
            assert!(s.status.is_ok(), "{} was not waited for: {:?}", s.name, s.status);
            assert!(!is_running(s.pid), "{} (pid {}) is still running", s.name, s.pid);
        }
    }

    /// A readiness check under which every process but `never_ready` is ready.
    fn ready_unless(name: &str, never_ready: &str) -> std::future::Ready<bool> {
        std::future::ready(name != never_ready)
    }

    #[tokio::test]
    async fn a_service_that_exits_during_start_up_stops_the_ones_already_started() {
        let dir = log_dir();
        let launches = vec![
            healthy("first"),
            healthy("second"),
            shell("failing", "echo starting; echo 'seed does not decrypt' >&2; exit 3"),
        ];
        let failure = start(launches, &dir, &supervision(), |name| ready_unless(name, "failing")).await.unwrap_err();
        assert_eq!(failure.name, "failing");
        assert_eq!(failure.reason, "exited during start-up (exit status: 3)");
        assert_eq!(failure.log, Some(dir.join("failing.log")));
        assert!(failure.tail.contains(&"seed does not decrypt".to_string()), "{:?}", failure.tail);
        assert_all_stopped(&failure.stopped, &["first", "second", "failing"]);
        let shown = failure.to_string();
        assert!(shown.starts_with("failing exited during start-up (exit status: 3); its output is in "), "{shown}");
        assert!(shown.contains("stopped everything started: first ("), "{shown}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_service_that_never_becomes_ready_is_stopped_with_all_the_others() {
        let dir = log_dir();
        let launches = vec![healthy("first"), healthy("stuck"), healthy("third")];
        let quick = Supervision { ready_within: Duration::from_millis(300), ..supervision() };
        let failure = start(launches, &dir, &quick, |name| ready_unless(name, "stuck")).await.unwrap_err();
        assert_eq!(failure.name, "stuck");
        assert_eq!(failure.reason, "was not ready within 0.3 s");
        assert_all_stopped(&failure.stopped, &["first", "stuck", "third"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_service_that_cannot_be_started_stops_the_ones_already_started() {
        let dir = log_dir();
        let launches =
            vec![healthy("first"), launch("missing", "/nonexistent/xtask-test-binary", &[]), healthy("never")];
        let failure = start(launches, &dir, &supervision(), |_| async { true }).await.unwrap_err();
        assert_eq!(failure.name, "missing");
        assert!(failure.reason.starts_with("could not be started"), "{}", failure.reason);
        assert_eq!(failure.log, None);
        assert_all_stopped(&failure.stopped, &["first"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_service_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let dir = log_dir();
        // SIG_IGN survives exec: this `sleep` ignores SIGTERM.
        let launches = vec![shell("stubborn", "trap '' TERM; exec sleep 30"), healthy("stuck")];
        let quick = Supervision {
            ready_within: Duration::from_millis(200),
            stop_grace: Duration::from_millis(300),
            ..supervision()
        };
        let begun = Instant::now();
        let failure = start(launches, &dir, &quick, |name| ready_unless(name, "stuck")).await.unwrap_err();
        assert!(begun.elapsed() < Duration::from_secs(5));
        assert_all_stopped(&failure.stopped, &["stubborn", "stuck"]);
        let killed = failure.stopped.first().and_then(|s| s.status.as_ref().ok()).map(|s| s.to_string());
        assert_eq!(killed.as_deref(), Some("signal: 9 (SIGKILL)"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_service_that_exits_after_start_up_stops_the_others() {
        let dir = log_dir();
        let launches = vec![healthy("first"), shell("short-lived", "sleep 0.3; exit 4"), healthy("third")];
        let mut started = start(launches, &dir, &supervision(), |_| async { true }).await.unwrap();
        let failure = started.run_until(std::future::pending()).await.unwrap_err();
        assert_eq!(failure.name, "short-lived");
        assert_eq!(failure.reason, "exited while running (exit status: 4)");
        assert_all_stopped(&failure.stopped, &["first", "short-lived", "third"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_stop_request_stops_every_service_cleanly() {
        let dir = log_dir();
        let launches = vec![healthy("first"), shell("second", "echo serving; exec sleep 30")];
        let mut started = start(launches, &dir, &supervision(), |_| async { true }).await.unwrap();
        assert_eq!(started.names().collect::<Vec<_>>(), ["first", "second"]);
        started.run_until(tokio::time::sleep(Duration::from_millis(100))).await.unwrap();
        let stopped = started.stop();
        assert_all_stopped(&stopped, &["first", "second"]);
        for s in &stopped {
            assert_eq!(s.status.as_ref().ok().and_then(|s| s.signal()), Some(15), "{} got SIGTERM", s.name);
        }
        assert_eq!(std::fs::read_to_string(dir.join("second.log")).unwrap(), "serving\n");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn dropping_the_started_services_stops_them() {
        let dir = log_dir();
        let started = start(vec![healthy("first")], &dir, &supervision(), |_| async { true }).await.unwrap();
        let pids: Vec<u32> = started.processes.iter().map(|p| p.child.id()).collect();
        drop(started);
        assert!(pids.iter().all(|pid| !is_running(*pid)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_start_up_that_is_cancelled_stops_the_services_already_started() {
        let dir = log_dir();
        let pid_file = dir.join("first.pid");
        let script = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
        let launches = vec![shell("first", &script), healthy("stuck")];
        let supervision = supervision();
        let starting = start(launches, &dir, &supervision, |name| ready_unless(name, "stuck"));
        // As when Ctrl-C wins the race against start-up.
        assert!(tokio::time::timeout(Duration::from_millis(300), starting).await.is_err());
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        assert!(!is_running(pid), "first (pid {pid}) is still running");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn colour_codes_are_kept_out_of_the_log_file() {
        assert_eq!(
            without_colours("\u{1b}[2m2025-01-01\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m identity: serving"),
            "2025-01-01  INFO identity: serving"
        );
        assert_eq!(without_colours("plain"), "plain");
    }
}
