//! `make bench` (scale): the operator and `check` on realistic clusters of 1,000 to 65,000 nodes
//! (`test_apiserver::generate`: ~10 KB per Node, as a managed platform writes them), each figure
//! next to a baseline measured in the same run on the same input:
//!
//! - `check` on a kubectl List file vs `jq '.items|length'` on the same file: wall time and peak
//!   memory (maximum resident set, from `wait4`);
//! - evaluation of an already-built snapshot, per node;
//! - the operator (the release binary, a separate process) against the API emulator (in this
//!   process) loaded with the same nodes: start to first status vs `kubectl get nodes
//!   --chunk-size=500` (wall and CPU), resident memory with one and three policies, `/metrics`
//!   series and scrape time, and heartbeat churn: CPU per watch event vs `kubectl get nodes
//!   --watch-only` on the same stream (paced at 1,000 events a second, median of three windows
//!   of 5,000), with the evaluations and writes it caused.
//!
//! `SCALE_SIZES=1000,5000 make bench` limits the sizes. The table goes to stdout and to
//! `BENCHMARKS.md` (between the markers), with the machine it ran on.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support_operator::crd::v1alpha1::{Platform, SupportPolicySpec};
use support_operator::policy::Policy;
use support_operator::snapshot::{ClusterSnapshot, Interner, NodeInfo};
use test_apiserver::generate::ClusterShape;
use test_apiserver::{ApiServer, Gvr};

const NOW: &str = "2026-11-25T12:00:00Z";
/// The binary measured: this build's, or `SCALE_OPERATOR` (another build, e.g. of an earlier
/// commit, to compare in the same run).
fn operator_bin() -> String {
    std::env::var("SCALE_OPERATOR").unwrap_or_else(|_| env!("CARGO_BIN_EXE_support-operator").to_string())
}

/// What a finished process cost.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` to completion (stdout discarded, stderr kept in a file) and reads its cost from `wait4`.
///
/// The command is started by a fresh, small copy of this binary (`SCALE_MEASURE`): a child spawned
/// straight from this process (vfork, then exec) inherits this process' high-water mark as its own
/// `ru_maxrss`, which made a small `check` look as large as the benchmark itself.
fn measure(cmd: &mut Command) -> Cost {
    let (cost, code) = measured(cmd);
    if code != 0 && code != 1 {
        let err = std::fs::read_to_string(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale-stderr.txt"));
        panic!("{cmd:?} exited {code}: {}", err.unwrap_or_default());
    }
    cost
}

/// [`measure`], with the exit code.
fn measured(cmd: &mut Command) -> (Cost, u64) {
    let err_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale-stderr.txt");
    let mut relay = Command::new(std::env::current_exe().expect("the benchmark binary"));
    relay.env("SCALE_MEASURE", &err_path).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => relay.env(k, v),
            None => relay.env_remove(k),
        };
    }
    let out = relay.stderr(Stdio::inherit()).output().expect("spawn the measuring relay");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(f.len(), 4, "relay output: {text}");
    (Cost { wall: Duration::from_micros(f[0]), cpu: Duration::from_micros(f[1]), max_rss_kib: f[2] }, f[3])
}

/// The relay of [`measure`]: runs the command of its arguments, prints wall µs, CPU µs, max RSS KiB
/// and the exit code (255 when killed by a signal).
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its resource usage
fn relay(err_path: &str) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let err_file = std::fs::File::create(err_path).expect("stderr file");
    let start = Instant::now();
    let child = Command::new(&args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(err_file).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned and have not waited.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 255 };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    println!("{} {} {} {code}", wall.as_micros(), tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss);
    std::process::exit(0)
}

/// The median (by wall time) of `runs` measurements.
fn median(runs: usize, mut f: impl FnMut() -> Cost) -> Cost {
    let mut all: Vec<Cost> = (0..runs).map(|_| f()).collect();
    all.sort_by_key(|c| c.wall);
    all[all.len() / 2]
}

/// CPU time (user + system) a running process has used, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Resident memory of a running process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// Waits until `cond` holds, polling every 10 ms; panics after `timeout`.
async fn until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Waits until a process' CPU time stops growing for `quiet`.
async fn settle(pid: u32, quiet: Duration) {
    let mut last = cpu_of(pid);
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = cpu_of(pid);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

fn policy(name: &str, selector: Option<(&str, &str)>) -> serde_json::Value {
    let mut spec = serde_json::to_value(SupportPolicySpec { platform: Platform::Aks, ..Default::default() }).unwrap();
    if let Some((k, v)) = selector {
        spec["nodeSelector"] = json!({"matchLabels": {k: v}});
    }
    json!({"apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy",
           "metadata": {"name": name}, "spec": spec})
}

fn has_status(server: &ApiServer, name: &str) -> bool {
    server
        .get_object(&Gvr::support_statuses(), None, name)
        .is_some_and(|o| o.pointer("/status/verdict").is_some_and(|v| !v.is_null()))
}

/// `GET path` on the operator's HTTP server: (body, time).
async fn get(addr: &str, path: &str) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    // A refused or failed scrape must not read as zero series.
    assert!(head.split(' ').nth(1) == Some("200"), "GET {path}: {}", head.lines().next().unwrap_or("no response"));
    (body.to_string(), start.elapsed())
}

fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[derive(Default)]
struct Row {
    nodes: usize,
    file_mb: f64,
    check: Cost,
    jq: Cost,
    eval_per_node: Duration,
    list: Cost,
    first_status: Duration,
    first_status_cpu: Duration,
    rss_1: u64,
    rss_3: u64,
    series: usize,
    node_series: usize,
    unhealthy_nodes: usize,
    scrape_bytes: usize,
    reconcile_per_node: Duration,
    scrape_time: Duration,
    churn_events: usize,
    churn_cpu: Duration,
    kubectl_churn_cpu: Duration,
    churn_evaluations: f64,
    churn_writes: f64,
}

fn check_and_jq(row: &mut Row, dir: &Path, shape: &ClusterShape, runs: usize) {
    let file = dir.join(format!("nodes-{}.json", shape.nodes));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    shape.write_list(&mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    row.file_mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
    row.check = median(runs, || {
        measure(Command::new(operator_bin()).args(["check", "--policy", "aks", "--server-version", "v1.35.3"]).args([
            "--now",
            NOW,
            "-o",
            "json",
            "--snapshot",
            file.to_str().unwrap(),
        ]))
    });
    row.jq = median(runs, || measure(Command::new("jq").arg(".items|length").arg(&file)));

    // Evaluation of a built snapshot (no parsing), per node: the snapshot as `check` and the
    // operator build it (what the policy reads of each node, shared strings interned).
    let spec = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
    let policy = Policy::resolve(&spec).unwrap();
    let (keys, mut interner) = (policy.node_keys(), Interner::default());
    let nodes: Vec<Arc<NodeInfo>> = (0..shape.nodes)
        .map(|i| Arc::new(NodeInfo::from_value(&shape.node(i)).unwrap().trimmed(&keys, &mut interner)))
        .collect();
    let snapshot = ClusterSnapshot { server_version: Some("v1.35.3".into()), nodes, ..Default::default() };
    let now = support_operator::time::parse_rfc3339(NOW).unwrap();
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(support_operator::policy::evaluate_resolved(&policy, &snapshot, now));
            t.elapsed()
        })
        .collect();
    times.sort();
    row.eval_per_node = times[times.len() / 2] / shape.nodes as u32;
    let _ = std::fs::remove_file(&file);
}

async fn operator(row: &mut Row, dir: &Path, shape: &ClusterShape, runs: usize) {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    for i in 0..shape.nodes {
        server.apply_object(shape.node(i));
    }
    let kubeconfig = server.write_kubeconfig(&dir.join("kubeconfig"));

    // Baseline: one paged list of the nodes by kubectl.
    let kc = kubeconfig.clone();
    row.list = tokio::task::spawn_blocking(move || {
        median(runs, || {
            measure(Command::new("kubectl").args(["get", "nodes", "--chunk-size=500"]).env("KUBECONFIG", &kc))
        })
    })
    .await
    .unwrap();

    // The operator, from start to its first status.
    server.apply_object(policy("aks", None));
    let addr = format!("127.0.0.1:{}", free_port());
    let health = format!("127.0.0.1:{}", free_port());
    // /metrics in plain HTTP: the scrape measured is the encoding, not TLS and TokenReview.
    let child = Command::new(operator_bin())
        .args(["run", "--metrics-addr", &addr, "--metrics-secure=false", "--health-addr", &health])
        .args(["--log-filter", "error"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("start the operator");
    let pid = child.0.id();
    row.first_status = until(Duration::from_secs(600), "the first status", || has_status(&server, "aks")).await;
    row.first_status_cpu = cpu_of(pid);
    settle(pid, Duration::from_secs(2)).await;
    row.rss_1 = rss_kib(pid);

    // Three policies.
    server.apply_object(policy("aks-linux", Some(("kubernetes.io/os", "linux"))));
    server.apply_object(policy("aks-system", Some(("kubernetes.azure.com/mode", "system"))));
    until(Duration::from_secs(600), "three statuses", || {
        has_status(&server, "aks-linux") && has_status(&server, "aks-system")
    })
    .await;
    settle(pid, Duration::from_secs(2)).await;
    row.rss_3 = rss_kib(pid);
    // The scrape: the fastest of three (the first warms the connection path).
    let mut scrapes = Vec::new();
    for _ in 0..3 {
        scrapes.push(get(&addr, "/metrics").await);
    }
    let took = scrapes.iter().map(|(_, t)| *t).min().unwrap_or_default();
    let metrics = scrapes.pop().map(|(m, _)| m).unwrap_or_default();
    let series: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    row.series = series.len();
    row.node_series = series.iter().filter(|l| l.contains("node=\"")).count();
    row.unhealthy_nodes = series
        .iter()
        .filter(|l| l.starts_with("support_node_") && l.contains("policy=\"aks\""))
        .filter_map(|l| l.split("node=\"").nth(1)?.split('"').next())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    row.scrape_bytes = metrics.len();
    row.scrape_time = took;

    // A full reconcile of the policy of every node that changes nothing (gather from the caches,
    // evaluate, compare with the stored status): touching the policy's metadata triggers one.
    let (sum0, count0) = (
        sample(&metrics, "support_reconcile_duration_seconds_sum"),
        sample(&metrics, "support_reconcile_duration_seconds_count"),
    );
    let mut touched = policy("aks", None);
    touched["metadata"]["annotations"] = json!({"bench": "reconcile"});
    server.apply_object(touched);
    let start = Instant::now();
    // Polled once a second: a scrape at 65,000 nodes costs tens of milliseconds of the CPU the
    // reconcile measured here runs on.
    while sample(&get(&addr, "/metrics").await.0, "support_reconcile_duration_seconds_count") <= count0 {
        assert!(start.elapsed() < Duration::from_secs(600), "timed out waiting for the touched policy's reconcile");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    settle(pid, Duration::from_secs(2)).await;
    let (after, _) = get(&addr, "/metrics").await;
    let (sum1, count1) = (
        sample(&after, "support_reconcile_duration_seconds_sum"),
        sample(&after, "support_reconcile_duration_seconds_count"),
    );
    let reconciles = (count1 - count0).max(1.0);
    row.reconcile_per_node = Duration::from_secs_f64((sum1 - sum0) / reconciles / shape.nodes as f64);

    // Heartbeat churn, watched by the operator and by kubectl.
    let mut kubectl = Command::new("kubectl")
        .args(["get", "nodes", "--watch-only"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("kubectl watch");
    let kpid = kubectl.0.id();
    let lines = Arc::new(AtomicUsize::new(0));
    {
        let lines = lines.clone();
        let stdout = kubectl.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for _ in BufReader::new(stdout).lines() {
                lines.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // kubectl's watch is established once its CPU settles after the initial list request.
    settle(kpid, Duration::from_secs(2)).await;
    // As many events at every size (enough for the CPU clock's 10 ms ticks): below 5,000 nodes
    // each node beats more than once, a second apart. Three windows; the median one is reported
    // (a single window at 65,000 nodes read anywhere from 42 to 60 µs per event across runs).
    let events = 5_000;
    let (m0, _) = get(&addr, "/metrics").await;
    let profile = profiler(pid, shape.nodes);
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:10Z").unwrap();
    let mut windows = Vec::new();
    for window in 0..CHURN_WINDOWS {
        // The scrape's own work (tens of milliseconds at 65,000 nodes) is over before a window opens.
        settle(pid, Duration::from_secs(1)).await;
        let (cpu0, kcpu0) = (cpu_of(pid), cpu_of(kpid));
        // Paced as kubelets spread them (a fixed rate at every size): sent as fast as the
        // emulator goes, events came in bursts at 1,000 nodes and one by one at 65,000 (where
        // each write is slower), and a watcher pays a wake-up per burst, not per event.
        let mut pace = tokio::time::interval(Duration::from_secs(1) / CHURN_RATE);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sent = Instant::now();
        for k in 0..events {
            pace.tick().await;
            let (round, i) =
                if shape.nodes >= events { (0, k * shape.nodes / events) } else { (k / shape.nodes, k % shape.nodes) };
            let second = (window * events.div_ceil(shape.nodes) + round) as i64;
            let at = (start + chrono::Duration::seconds(second)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            server.apply_object(shape.heartbeat(i, &at));
        }
        let rate = events as f64 / sent.elapsed().as_secs_f64();
        assert!(rate > 0.9 * CHURN_RATE as f64, "{rate:.0} heartbeats per second, below the pace of {CHURN_RATE}");
        let seen = (window + 1) * events;
        until(Duration::from_secs(600), "kubectl saw every event", || lines.load(Ordering::Relaxed) >= seen).await;
        settle(kpid, Duration::from_secs(1)).await;
        settle(pid, Duration::from_secs(2)).await;
        // Read before the closing scrape, whose cost grows with the series, not with the events.
        windows.push((cpu_of(pid).saturating_sub(cpu0), cpu_of(kpid).saturating_sub(kcpu0)));
    }
    drop(profile);
    windows.sort();
    eprintln!("scale: {} nodes: heartbeat windows (operator, kubectl CPU per 5,000 events): {windows:?}", shape.nodes);
    (row.churn_cpu, row.kubectl_churn_cpu) = windows[windows.len() / 2];
    let (m1, _) = get(&addr, "/metrics").await;
    row.churn_events = events;
    row.churn_evaluations = sample(&m1, "support_reconcile_duration_seconds_count")
        - sample(&m0, "support_reconcile_duration_seconds_count");
    row.churn_writes = sample(&m1, "support_status_writes_total") - sample(&m0, "support_status_writes_total");
    drop((kubectl, child));
}

/// Heartbeat windows of 5,000 events each, at every size.
const CHURN_WINDOWS: usize = 3;
/// Heartbeats per second.
const CHURN_RATE: u32 = 1_000;

/// With `SCALE_PERF=1`, `perf record` of the operator for the heartbeat windows, written to
/// `target/tmp/scale-perf-<nodes>.data` (read it with `perf report -i`).
fn profiler(pid: u32, nodes: usize) -> Option<Interrupted> {
    std::env::var_os("SCALE_PERF")?;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("scale-perf-{nodes}.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "2000", "--call-graph", "dwarf", "-p", &pid.to_string(), "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .expect("SCALE_PERF needs perf (Debian: linux-perf)");
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("profiling the heartbeat windows into {}", out.display());
    Some(Interrupted(child))
}

/// A process stopped with SIGINT (so it finishes its output) and reaped when dropped.
struct Interrupted(std::process::Child);

impl Drop for Interrupted {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

/// A process killed (and reaped) when dropped: a failing measurement leaves nothing running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()))
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {:.0} GiB", mem as f64 / 1024.0 / 1024.0)
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let cols: Vec<String> = rows.iter().map(|r| format!("{} nodes", r.nodes)).collect();
    t.push_str(&format!("| what | {} | goal |\n|---|{}---|\n", cols.join(" | "), "---|".repeat(rows.len())));
    let mut line = |what: &str, cells: Vec<String>, goal: &str| {
        t.push_str(&format!("| {what} | {} | {goal} |\n", cells.join(" | ")));
    };
    line("List file", rows.iter().map(|r| format!("{:.0} MB", r.file_mb)).collect(), "");
    line(
        "`check`, wall (÷ `jq '.items\\|length'`)",
        rows.iter().map(|r| format!("{} ({})", secs(r.check.wall), ratio(r.check.wall, r.jq.wall))).collect(),
        "≤ 0.3 × jq",
    );
    line(
        "`check`, peak memory (jq)",
        rows.iter().map(|r| format!("{} ({})", mib(r.check.max_rss_kib), mib(r.jq.max_rss_kib))).collect(),
        "≤ 256 MiB",
    );
    line(
        "`check`, time per node",
        rows.iter().map(|r| format!("{:.1} µs", r.check.wall.as_secs_f64() * 1e6 / r.nodes as f64)).collect(),
        "65k within 1.2 × 5k",
    );
    line(
        "evaluate a built snapshot, per node",
        rows.iter().map(|r| format!("{:.2} µs", r.eval_per_node.as_secs_f64() * 1e6)).collect(),
        "≤ 1 µs",
    );
    line(
        "operator start → first status (÷ `kubectl get nodes --chunk-size=500`)",
        rows.iter().map(|r| format!("{} ({})", secs(r.first_status), ratio(r.first_status, r.list.wall))).collect(),
        "≤ 1.2 ×",
    );
    line(
        "operator CPU to first status (÷ kubectl's CPU)",
        rows.iter()
            .map(|r| format!("{} ({})", secs(r.first_status_cpu), ratio(r.first_status_cpu, r.list.cpu)))
            .collect(),
        "≤ 0.2 ×",
    );
    line("operator RSS, 1 policy", rows.iter().map(|r| mib(r.rss_1)).collect(), "≤ 48 MiB at 5k, 128 MiB at 65k");
    line("operator RSS, 3 policies", rows.iter().map(|r| mib(r.rss_3)).collect(), "same");
    line(
        "full reconcile (gather, evaluate, compare), per node",
        rows.iter().map(|r| format!("{:.2} µs", r.reconcile_per_node.as_secs_f64() * 1e6)).collect(),
        "≤ 2 µs at 65k",
    );
    line(
        "`/metrics` at 3 policies: series (per node), bytes, scrape",
        rows.iter()
            .map(|r| {
                format!(
                    "{} ({}) series, {:.0} KB, {}",
                    r.series,
                    r.node_series,
                    r.scrape_bytes as f64 / 1e3,
                    secs(r.scrape_time)
                )
            })
            .collect(),
        "bounded by pools and unhealthy nodes",
    );
    line(
        "unhealthy nodes (policy aks: a finding at Warning or worse, or not Ready)",
        rows.iter().map(|r| r.unhealthy_nodes.to_string()).collect(),
        "",
    );
    line(
        "heartbeat churn: CPU per watch event, median of 3 windows (÷ `kubectl get nodes --watch-only`)",
        rows.iter()
            .map(|r| {
                let per = r.churn_cpu / r.churn_events.max(1) as u32;
                let kper = r.kubectl_churn_cpu / r.churn_events.max(1) as u32;
                format!("{:.0} µs ({})", per.as_secs_f64() * 1e6, ratio(per, kper))
            })
            .collect(),
        "≤ 0.3 ×, flat",
    );
    line(
        "heartbeat churn: evaluations, status writes",
        rows.iter()
            .map(|r| {
                format!("{} × {} events → {}, {}", CHURN_WINDOWS, r.churn_events, r.churn_evaluations, r.churn_writes)
            })
            .collect(),
        "0, 0",
    );
    t
}

/// The load average over 1, 5 and 15 minutes.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Hostile input, refused: time and peak memory of `check` on each.
fn hostile(dir: &Path) -> String {
    let head = "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy\nmetadata: {name: p}\n";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases = [
        ("a YAML policy nested 100,000 deep", format!("{head}spec: {{platform: AKS, x: {deep}}}\n"), true),
        ("a YAML snapshot nested 100,000 deep", format!("kind: Node\nmetadata: {{name: a, labels: {deep}}}\n"), false),
        (
            "a policy with a 10 MB datePattern",
            format!("{head}spec:\n  platform: AKS\n  nodeImage:\n    datePattern: '{}'\n", "a".repeat(10 << 20)),
            true,
        ),
    ];
    let mut out = String::from("Hostile input, refused (`check` exits 2): ");
    let mut parts = Vec::new();
    for (what, content, is_policy) in cases {
        let file = dir.join("hostile.yaml");
        std::fs::write(&file, content).unwrap();
        let f = file.to_str().unwrap();
        let (policy, snapshot) = if is_policy { (f, "examples/snapshots/aks-healthy.json") } else { ("aks", f) };
        let (cost, code) = measured(Command::new(operator_bin()).current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "check",
            "--policy",
            policy,
            "--snapshot",
            snapshot,
            "--server-version",
            "v1.35.3",
        ]));
        let verdict = if code == 2 { String::new() } else { format!(", exit code {code}: not refused") };
        parts.push(format!("{what}: {} and {}{verdict}", secs(cost.wall), mib(cost.max_rss_kib)));
    }
    out.push_str(&parts.join("; "));
    out.push_str(".\n");
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(err_path) = std::env::var("SCALE_MEASURE") {
        relay(&err_path);
    }
    let load_before = load();
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "1000,5000,20000,65000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // `SCALE_PARTS=operator` measures the operator only (while working on it).
    let parts = std::env::var("SCALE_PARTS").unwrap_or_else(|_| "check,operator".into());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = Vec::new();
    for &n in &sizes {
        let shape = ClusterShape::new(n);
        let runs = if n <= 5_000 { 3 } else { 1 };
        let mut row = Row { nodes: n, ..Default::default() };
        if parts.contains("check") {
            eprintln!("scale: {n} nodes: check and jq ({runs} runs each)…");
            check_and_jq(&mut row, &dir, &shape, runs);
        }
        if parts.contains("operator") {
            eprintln!("scale: {n} nodes: the operator against the emulator…");
            operator(&mut row, &dir, &shape, runs).await;
        }
        rows.push(row);
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let hostile = hostile(&dir);
    let binary = std::env::var("SCALE_OPERATOR").map(|b| format!(" (binary: {b})")).unwrap_or_default();
    let report = format!(
        "Measured by `make bench` (`cargo bench --bench scale`, sizes {:?}) at commit {commit}{binary} on {}; load \
         average {load_before} before, {} after.\n\
         Medians of 3 runs up to 5,000 nodes, single runs above. Baselines ran in the same run on the same input.\n\n{}\n{hostile}",
        sizes,
        machine(),
        load(),
        table(&rows)
    );
    println!("{report}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- scale:begin -->", "<!-- scale:end -->");
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{report}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{begin}\n{report}{end}\n"),
    };
    std::fs::write(&path, new).unwrap();
    eprintln!("scale: written to {}", path.display());
}
