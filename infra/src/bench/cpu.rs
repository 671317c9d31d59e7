//! CPU time per unit of work (order, lifecycle, decision, query), per process, over a measured
//! window: every benchmark takes a [`Snapshot`] before and after its load and reports the
//! difference as a [`CpuReport`].
//!
//! Counted from `/proc` (Linux; an empty report elsewhere):
//! - this process, split by thread: the services run on their own runtime, and each sandbox on
//!   its own (see [`super::roles`]), whose threads carry the role in their name; every other
//!   thread of the process (the main thread, the main runtime's workers) is the load driver and
//!   the bench's own observers (lag samplers, progress polls). Threads are sampled every 100 ms
//!   during the window, so one that ends inside it (Tantivy starts new indexing workers after
//!   each commit) counts in its role up to its last sample; the rest of its time is a row of
//!   its own (`bench process, exited threads`);
//! - the local servers, by command name: every `postgres`, `nats-server`, `redis-server` and
//!   `clickhouse*` process on the machine, summed. Each process counts `utime + stime` and also
//!   `cutime + cstime`, the time of its children that exited and were reaped: a Postgres backend
//!   that ends inside the window leaves its share in the postmaster's `cutime`, so its time is
//!   counted once whether it is alive at the end or not;
//! - the machine's busy time from `/proc/stat`; what the rows above do not explain (other users
//!   of the machine, the kernel's own threads) is the `rest of the machine` figure.
//!
//! The servers are shared: another client of the same Postgres during the window is counted too.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::roles::Role;
use super::svg::{escape, LEFT, TOP, WIDTH};

/// `USER_HZ`: the unit of the times in `/proc/<pid>/stat` and `/proc/stat` on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of one `/proc/<pid>/stat` (or `/proc/<pid>/task/<tid>/stat`) line the report uses,
/// in clock ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command (or thread) name, at most 15 bytes.
    pub comm: String,
    pub utime: u64,
    pub stime: u64,
    /// Time of children that exited and were waited for.
    pub cutime: u64,
    pub cstime: u64,
}

impl ProcStat {
    /// Parses a stat line. The command is in parentheses and may itself contain spaces and
    /// parentheses, so the fields are counted from the last `)`.
    pub fn parse(line: &str) -> Option<Self> {
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        let pid = line[..open].trim().parse().ok()?;
        let comm = line.get(open + 1..close)?.to_owned();
        let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
        // proc(5) numbers the fields from 1 with pid 1 and comm 2; `fields[0]` is state (3), so
        // field n is `fields[n - 3]`: utime 14, stime 15, cutime 16, cstime 17.
        let field = |n: usize| -> Option<u64> {
            // cutime and cstime are signed in proc(5); never negative in practice.
            let value: i64 = fields.get(n - 3)?.parse().ok()?;
            Some(u64::try_from(value).unwrap_or(0))
        };
        Some(Self {
            pid,
            comm,
            utime: field(14)?,
            stime: field(15)?,
            cutime: field(16)?,
            cstime: field(17)?,
        })
    }

    /// Its own CPU time.
    pub fn own(&self) -> u64 {
        self.utime + self.stime
    }

    /// Its own CPU time and that of its children that exited.
    pub fn with_exited_children(&self) -> u64 {
        self.own() + self.cutime + self.cstime
    }
}

/// The local servers, each matched by command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Server {
    Postgres,
    Nats,
    Redis,
    ClickHouse,
}

impl Server {
    const ALL: [Server; 4] = [
        Server::Postgres,
        Server::Nats,
        Server::Redis,
        Server::ClickHouse,
    ];

    /// Whether a process of command name `comm` is one of this server's.
    pub fn matches(self, comm: &str) -> bool {
        match self {
            Server::Postgres => comm == "postgres",
            Server::Nats => comm == "nats-server",
            Server::Redis => comm.starts_with("redis-server"),
            // `clickhouse-server` is a link to `clickhouse`; comm is cut at 15 bytes.
            Server::ClickHouse => comm.starts_with("clickhouse"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::Nats => "nats-server",
            Server::Redis => "redis-server",
            Server::ClickHouse => "clickhouse-server",
        }
    }
}

/// Busy time (all but idle and iowait) from the `cpu` line of `/proc/stat`.
pub fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = values.get(3)? + values.get(4)?;
    Some(values.iter().sum::<u64>().saturating_sub(idle))
}

/// CPU counters at one instant.
#[derive(Debug)]
pub struct Snapshot {
    at: Instant,
    /// This process's threads: thread id → (role, ticks).
    threads: HashMap<u32, (Role, u64)>,
    /// This process as a whole, exited threads included.
    process: u64,
    /// Each server found: the sum over its processes, exited children included.
    servers: BTreeMap<Server, u64>,
    machine_busy: u64,
    /// For a snapshot that starts a window ([`Snapshot::start`]): the last counters seen of
    /// every thread since, sampled a few times a second, so a thread that ends inside the
    /// window (a search index worker after a commit, a blocking thread) is still counted in
    /// its role up to its last sample.
    sampler: Option<Sampler>,
}

/// How often [`Sampler`] reads the threads' counters.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug)]
struct Sampler {
    seen: Arc<Mutex<HashMap<u32, (Role, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn spawn() -> Self {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, until) = (seen.clone(), stop.clone());
        // Best effort: without it exited threads are the unattributed row.
        let _ = std::thread::Builder::new()
            .name("bench-cpu-meter".to_owned())
            .spawn(move || {
                while !until.load(Ordering::Relaxed) {
                    let threads = own_threads();
                    if let Ok(mut seen) = into.lock() {
                        seen.extend(threads);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            });
        Self { seen, stop }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// This process's threads now: thread id → (role, own ticks).
fn own_threads() -> HashMap<u32, (Role, u64)> {
    stat_lines("/proc/self/task")
        .iter()
        .filter_map(|line| ProcStat::parse(line))
        .map(|stat| (stat.pid, (Role::of_thread(&stat.comm), stat.own())))
        .collect()
}

impl Snapshot {
    /// Reads the counters now, at the start of a window, and keeps sampling this process's
    /// threads until the snapshot is dropped.
    pub fn start() -> Self {
        let mut snapshot = Self::take();
        snapshot.sampler = Some(Sampler::spawn());
        snapshot
    }

    /// Reads the counters now. Unreadable entries (a process that exited while being read,
    /// another user's process) are skipped.
    pub fn take() -> Self {
        let threads = own_threads();
        let process = read("/proc/self/stat")
            .and_then(|line| ProcStat::parse(&line))
            .map_or(0, |stat| stat.own());
        let mut servers = BTreeMap::new();
        for stat in stat_lines("/proc")
            .iter()
            .filter_map(|l| ProcStat::parse(l))
        {
            if let Some(server) = Server::ALL.into_iter().find(|s| s.matches(&stat.comm)) {
                *servers.entry(server).or_insert(0) += stat.with_exited_children();
            }
        }
        Self {
            at: Instant::now(),
            threads,
            process,
            servers,
            machine_busy: read("/proc/stat")
                .and_then(|stat| machine_busy_ticks(&stat))
                .unwrap_or(0),
            sampler: None,
        }
    }

    /// What was spent between `before` and now, per process, for `units` units of `unit`.
    pub fn since(&self, before: &Snapshot, unit: &str, units: u64) -> CpuReport {
        let mut threads = before
            .sampler
            .as_ref()
            .and_then(|s| s.seen.lock().ok().map(|seen| seen.clone()))
            .unwrap_or_default();
        // The threads alive now count what they show now; those that ended, their last sample.
        threads.extend(self.threads.iter().map(|(tid, seen)| (*tid, *seen)));
        let mut roles: BTreeMap<Role, u64> = BTreeMap::new();
        for (tid, (role, ticks)) in &threads {
            let start = before
                .threads
                .get(tid)
                .map_or(0, |(_, ticks)| *ticks)
                .min(*ticks);
            *roles.entry(*role).or_insert(0) += ticks - start;
        }
        let attributed: u64 = roles.values().sum();
        let process = self.process.saturating_sub(before.process);
        let mut rows: Vec<(String, u64)> = roles
            .into_iter()
            .map(|(role, ticks)| (role.label().to_owned(), ticks))
            .collect();
        let exited = process.saturating_sub(attributed);
        if exited > 0 {
            rows.push((EXITED_THREADS.to_owned(), exited));
        }
        for (server, ticks) in &self.servers {
            let start = before.servers.get(server).copied().unwrap_or(0);
            rows.push((server.label().to_owned(), ticks.saturating_sub(start)));
        }
        CpuReport::new(
            unit,
            units,
            self.at.duration_since(before.at).as_secs_f64(),
            &rows,
            self.machine_busy.saturating_sub(before.machine_busy),
        )
    }
}

/// The row of this process's threads that ended inside the window.
const EXITED_THREADS: &str = "bench process, exited threads";

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The `stat` line of every numeric entry of `dir` (`/proc` or `/proc/self/task`).
fn stat_lines(dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .collect()
}

/// One process (or thread role of the bench process) over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuRow {
    pub process: String,
    pub cpu_ms: f64,
    pub ms_per_unit: f64,
    /// Average cores busy: CPU time over wall time.
    pub cores: f64,
}

/// CPU milliseconds per unit of work, per process, over one measured window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuReport {
    /// What one unit is: `order`, `confirmed order`, `lifecycle`, `decision`, `query`.
    pub unit: String,
    pub units: u64,
    pub wall_s: f64,
    /// How the bench process was split: by thread, see `processes`.
    pub split: &'static str,
    pub processes: Vec<CpuRow>,
    /// The rows above summed.
    pub measured_ms_per_unit: f64,
    /// The machine's busy time (all cores) per unit.
    pub machine_ms_per_unit: f64,
    /// Machine minus measured: other users of the machine and the kernel's own threads.
    pub rest_of_machine_ms_per_unit: f64,
}

const SPLIT: &str = "one bench process, split by thread: services, each sandbox and the load \
                     driver run on runtimes of their own; servers summed over their processes";

impl CpuReport {
    fn new(unit: &str, units: u64, wall_s: f64, rows: &[(String, u64)], machine: u64) -> Self {
        let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SECOND;
        let per_unit = |ms: f64| if units == 0 { 0.0 } else { ms / units as f64 };
        let processes: Vec<CpuRow> = rows
            .iter()
            .map(|(process, ticks)| CpuRow {
                process: process.clone(),
                cpu_ms: ms(*ticks),
                ms_per_unit: per_unit(ms(*ticks)),
                cores: if wall_s > 0.0 {
                    ms(*ticks) / 1000.0 / wall_s
                } else {
                    0.0
                },
            })
            .collect();
        let measured: f64 = processes.iter().map(|r| r.cpu_ms).sum();
        let machine_ms = ms(machine);
        Self {
            unit: unit.to_owned(),
            units,
            wall_s,
            split: SPLIT,
            processes,
            measured_ms_per_unit: per_unit(measured),
            machine_ms_per_unit: per_unit(machine_ms),
            rest_of_machine_ms_per_unit: per_unit((machine_ms - measured).max(0.0)),
        }
    }

    /// A report of nothing measured, for other reports' tests.
    #[cfg(test)]
    pub fn empty() -> Self {
        Self::new("order", 0, 0.0, &[], 0)
    }

    /// The CPU milliseconds per unit of the row named `process`, 0 when absent.
    #[cfg(test)]
    pub fn ms_per_unit(&self, process: &str) -> f64 {
        self.processes
            .iter()
            .find(|r| r.process == process)
            .map_or(0.0, |r| r.ms_per_unit)
    }

    /// The table the benches print, one line per process, titled `title`.
    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "CPU per {} ({title}: {} {}s over {:.1} s)\n",
            self.unit, self.units, self.unit, self.wall_s
        );
        for row in &self.processes {
            let _ = writeln!(
                out,
                "  {:<30} {:>9.3} ms/{}  {:>9.0} ms  {:>5.2} cores",
                row.process, row.ms_per_unit, self.unit, row.cpu_ms, row.cores
            );
        }
        let _ = writeln!(
            out,
            "  {:<30} {:>9.3} ms/{}\n  {:<30} {:>9.3} ms/{}  (other users, kernel threads)\n  {:<30} {:>9.3} ms/{}",
            "measured, summed",
            self.measured_ms_per_unit,
            self.unit,
            "rest of the machine",
            self.rest_of_machine_ms_per_unit,
            self.unit,
            "machine busy",
            self.machine_ms_per_unit,
            self.unit
        );
        out
    }
}

/// One bar colour per process, stable across charts.
fn color(process: &str) -> &'static str {
    match process {
        p if p == Role::Services.label() => "#1f77b4",
        p if p == Role::PaymentSandbox.label() => "#9467bd",
        p if p == Role::LogisticsSandbox.label() => "#8c564b",
        p if p == Role::WebhookReceiver.label() => "#e377c2",
        p if p == Role::Driver.label() => "#7f7f7f",
        "postgres" => "#2ca02c",
        "nats-server" => "#ff7f0e",
        "redis-server" => "#d62728",
        "clickhouse-server" => "#bcbd22",
        _ => "#c7c7c7",
    }
}

/// A bar chart of CPU milliseconds per unit per process, one group of bars per measured window
/// (`(name, report)`), for the `-cpu.svg` file beside each bench's JSON.
pub fn chart(title: &str, windows: &[(&str, &CpuReport)]) -> String {
    const ROW: f64 = 22.0;
    const HEADER: f64 = 30.0;
    const LABEL: f64 = 210.0;
    const BAR_WIDTH: f64 = 420.0;
    let rows: usize = windows.iter().map(|(_, r)| r.processes.len() + 1).sum();
    let height = TOP + HEADER * windows.len() as f64 + ROW * rows as f64 + 30.0;
    let max = windows
        .iter()
        .flat_map(|(_, r)| {
            r.processes
                .iter()
                .map(|p| p.ms_per_unit)
                .chain([r.measured_ms_per_unit])
        })
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { BAR_WIDTH / max } else { 0.0 };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="28" font-size="16">{}</text>"#,
        escape(title)
    );
    let mut y = TOP;
    for (name, report) in windows {
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
            y + 18.0,
            escape(&format!(
                "{name}: CPU ms per {} ({} {}s, {:.1} s wall)",
                report.unit, report.units, report.unit, report.wall_s
            ))
        );
        y += HEADER;
        let total = CpuRow {
            process: "measured, summed".to_owned(),
            cpu_ms: 0.0,
            ms_per_unit: report.measured_ms_per_unit,
            cores: 0.0,
        };
        for row in report.processes.iter().chain([&total]) {
            let width = (row.ms_per_unit * scale).max(1.0);
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{:.1}" y="{y:.1}" width="{width:.1}" height="16" fill="{}"/><text x="{:.1}" y="{:.1}">{:.3} ms</text>"#,
                LEFT + LABEL - 8.0,
                y + 13.0,
                escape(&row.process),
                LEFT + LABEL,
                color(&row.process),
                LEFT + LABEL + width + 6.0,
                y + 13.0,
                row.ms_per_unit,
            );
            y += ROW;
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Writes [`chart`] beside a bench's JSON report (`x.json` → `x-cpu.svg`) and says which files
/// the bench wrote: the report, its own chart `svg` and this one.
pub fn write_chart(
    out: &std::path::Path,
    svg: &std::path::Path,
    title: &str,
    windows: &[(&str, &CpuReport)],
) -> anyhow::Result<()> {
    let stem = out
        .file_stem()
        .map_or_else(|| "bench".into(), |s| s.to_string_lossy().into_owned());
    let path = out.with_file_name(format!("{stem}-cpu.svg"));
    std::fs::write(&path, chart(title, windows))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    println!(
        "wrote {}, {} and {}",
        out.display(),
        svg.display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 12 20 0 1 0 3303 2225";
        let stat = ProcStat::parse(line).unwrap();
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.comm, "postgres: a (b) c");
        assert_eq!(
            (stat.utime, stat.stime, stat.cutime, stat.cstime),
            (250, 75, 30, 12)
        );
        assert_eq!(stat.own(), 325);
        assert_eq!(stat.with_exited_children(), 367);
    }

    #[test]
    fn a_truncated_or_garbled_stat_line_is_none() {
        assert_eq!(ProcStat::parse("12 (x) S 1 2 3"), None);
        assert_eq!(ProcStat::parse("no parentheses here"), None);
        assert_eq!(
            ProcStat::parse("x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14"),
            None
        );
    }

    #[test]
    fn the_real_stat_of_this_process_parses() {
        let Ok(line) = std::fs::read_to_string("/proc/self/stat") else {
            return; // not Linux
        };
        let stat = ProcStat::parse(&line).unwrap();
        assert_eq!(stat.pid, std::process::id());
    }

    #[test]
    fn servers_are_matched_by_command_name() {
        assert!(Server::Postgres.matches("postgres"));
        assert!(!Server::Postgres.matches("postgres_exporter"));
        assert!(Server::Nats.matches("nats-server"));
        assert!(Server::Redis.matches("redis-server"));
        assert!(Server::ClickHouse.matches("clickhouse-serv"));
        assert!(!Server::ClickHouse.matches("waybill"));
    }

    #[test]
    fn machine_busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 1 2 0 0 0\ncpu0 50 2 25 500 10 0 1 0 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(158));
    }

    fn snapshot(threads: &[(u32, Role, u64)], process: u64, postgres: u64, busy: u64) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            threads: threads.iter().map(|(t, r, n)| (*t, (*r, *n))).collect(),
            process,
            servers: BTreeMap::from([(Server::Postgres, postgres)]),
            machine_busy: busy,
            sampler: None,
        }
    }

    #[test]
    fn a_thread_that_ended_counts_in_its_role_up_to_its_last_sample() {
        let mut before = snapshot(&[(1, Role::Services, 100)], 100, 0, 0);
        let sampler = Sampler {
            seen: Arc::new(Mutex::new(HashMap::from([
                (1, (Role::Services, 150)),
                (7, (Role::Services, 30)),
            ]))),
            stop: Arc::new(AtomicBool::new(true)),
        };
        before.sampler = Some(sampler);
        // Thread 7 started and ended inside the window: 30 ticks sampled, 35 in all.
        let after = snapshot(&[(1, Role::Services, 200)], 100 + 100 + 35, 0, 0);
        let report = after.since(&before, "order", 10);
        assert_eq!(report.ms_per_unit(Role::Services.label()), 130.0);
        assert_eq!(report.ms_per_unit(EXITED_THREADS), 5.0);
    }

    #[test]
    fn the_sampler_sees_this_process_threads() {
        if std::fs::metadata("/proc/self/task").is_err() {
            return; // not Linux
        }
        let before = Snapshot::start();
        let seen = before.sampler.as_ref().unwrap().seen.clone();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while seen.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no sample in 10 s");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            seen.lock().unwrap().len() >= 2,
            "this thread and the sampler"
        );
    }

    #[test]
    fn rows_are_per_role_per_unit_with_exited_threads_and_the_rest_of_the_machine() {
        let before = snapshot(
            &[
                (1, Role::Driver, 10),
                (2, Role::Services, 100),
                (3, Role::Services, 50),
            ],
            200,
            1_000,
            5_000,
        );
        // Thread 3 exited (its last 20 ticks are only in the process total); thread 4 is new.
        let after = snapshot(
            &[
                (1, Role::Driver, 30),
                (2, Role::Services, 300),
                (4, Role::PaymentSandbox, 40),
            ],
            200 + 20 + 200 + 40 + 20,
            1_000 + 150,
            5_000 + 600,
        );
        let report = after.since(&before, "order", 100);
        let row = |name: &str| report.processes.iter().find(|r| r.process == name).cloned();
        assert_eq!(report.ms_per_unit(Role::Services.label()), 20.0);
        assert_eq!(report.ms_per_unit(Role::PaymentSandbox.label()), 4.0);
        assert_eq!(report.ms_per_unit(Role::Driver.label()), 2.0);
        assert_eq!(report.ms_per_unit(EXITED_THREADS), 2.0);
        assert_eq!(report.ms_per_unit("postgres"), 15.0);
        assert_eq!(row("postgres").unwrap().cpu_ms, 1_500.0);
        assert_eq!(report.measured_ms_per_unit, 43.0);
        assert_eq!(report.machine_ms_per_unit, 60.0);
        assert_eq!(report.rest_of_machine_ms_per_unit, 17.0);
        let table = report.table("place");
        assert!(table.contains("ms/order"), "{table}");
        assert!(table.contains(Role::Services.label()), "{table}");
    }

    #[test]
    fn zero_units_report_zero_per_unit_instead_of_infinity() {
        let before = snapshot(&[(1, Role::Services, 0)], 0, 0, 0);
        let after = snapshot(&[(1, Role::Services, 10)], 10, 0, 10);
        let report = after.since(&before, "order", 0);
        assert_eq!(report.ms_per_unit(Role::Services.label()), 0.0);
        assert!(report.measured_ms_per_unit.is_finite());
    }

    #[test]
    fn chart_draws_one_bar_per_process_and_window_and_escapes_names() {
        let before = snapshot(&[(1, Role::Services, 0)], 0, 0, 0);
        let after = snapshot(&[(1, Role::Services, 10), (2, Role::Driver, 5)], 15, 20, 40);
        let report = after.since(&before, "order", 10);
        let svg = chart("CPU <place>", &[("a & b", &report), ("second", &report)]);
        // services, driver, postgres and the summed bar, twice.
        assert_eq!(svg.matches("<rect x=").count(), 8, "{svg}");
        assert!(svg.contains("CPU &lt;place&gt;") && svg.contains("a &amp; b"));
        assert!(svg.contains("35.000 ms"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
