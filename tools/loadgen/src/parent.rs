//! The parent process: spawns the client processes, starts each configuration in all of them at
//! once, shows progress (on a terminal only), gathers their reports and prints the result.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::Config;
use crate::report::{self, ClientReport, ConfigReport, Report, Row};
use crate::runner::Budget;
use crate::{Args, plot};

/// A line from a child, or its end.
enum Message {
    Ready(usize),
    Progress(u64),
    Report(Box<ClientReport>),
    Exited,
}

/// A client process as the parent sees it.
struct Client {
    process: Child,
    stdin: Option<ChildStdin>,
    ready: Option<usize>,
    progress: u64,
    report: Option<ClientReport>,
    exited: bool,
}

/// Runs the whole load; `Ok(false)` when an object was corrupted or lost or a client failed.
pub fn run(args: &Args, configs: &[Config]) -> Result<bool, String> {
    check_clients(args)?;
    let (tx, rx) = mpsc::channel();
    let mut clients = Vec::new();
    for i in 0..args.clients.max(1) {
        let mut process = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args(child_args(args, i))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start client process {i}: {e}"))?;
        let stdout = process.stdout.take().ok_or("no stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(m) = parse(&line) {
                    let _ = tx.send((i, m));
                }
            }
            let _ = tx.send((i, Message::Exited));
        });
        let stdin = process.stdin.take();
        clients.push(Client { process, stdin, ready: None, progress: 0, report: None, exited: false });
    }
    drop(tx);
    for (k, config) in configs.iter().enumerate() {
        wait(&rx, &mut clients, |c| c.exited || c.ready == Some(k), None);
        let bar = progress_bar(args, config.name());
        for c in clients.iter_mut().filter(|c| !c.exited) {
            c.progress = 0;
            if let Some(stdin) = c.stdin.as_mut() {
                let _ = writeln!(stdin, "go");
            }
        }
        let started = Instant::now();
        wait(&rx, &mut clients, |c| c.exited || c.report.is_some() || c.ready == Some(k + 1), Some((&bar, started)));
        bar.finish_and_clear();
    }
    wait(&rx, &mut clients, |c| c.exited || c.report.is_some(), None);
    let mut client_errors = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        c.stdin = None;
        match c.process.wait() {
            Ok(status) if status.success() && c.report.is_some() => {}
            Ok(status) => client_errors.push(format!("loadgen-{i}: {status}")),
            Err(e) => client_errors.push(format!("loadgen-{i}: {e}")),
        }
    }
    let reports: Vec<ClientReport> = clients.into_iter().filter_map(|c| c.report).collect();
    let report = assemble(args, configs, reports, client_errors);
    print(&report);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&without_histograms(&report)).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write(&report, path)?;
    }
    Ok(report.ok)
}

/// Every `loadgen-<i>` must be a client task of the system description (when it can be read).
fn check_clients(args: &Args) -> Result<(), String> {
    let system = match memserver_system::System::load(&args.system) {
        Ok(system) => system,
        Err(_) if args.socket.is_some() || args.configs().iter().all(|c| !c.is_memserver()) => {
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    for i in 0..args.clients.max(1) {
        let name = format!("loadgen-{i}");
        if system.client_by_name(&name).is_none() {
            return Err(format!("{}: no client task named {name} (--clients {})", args.system.display(), args.clients));
        }
    }
    Ok(())
}

/// The child's command line: the parent's options plus `--child <i>`.
fn child_args(args: &Args, i: usize) -> Vec<String> {
    let mut v = vec![
        "--child".into(),
        i.to_string(),
        "--workload".into(),
        args.workload.name().into(),
        "--threads".into(),
        args.threads.to_string(),
        "--size".into(),
        args.size.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--system".into(),
        args.system.display().to_string(),
    ];
    match args.budget() {
        Budget::Ops(n) => v.extend(["--ops".into(), n.to_string()]),
        Budget::Time(t) => v.extend(["--seconds".into(), t.as_secs_f64().to_string()]),
    }
    if let Some(socket) = &args.socket {
        v.extend(["--socket".into(), socket.display().to_string()]);
    }
    if args.no_magazines {
        v.push("--no-magazines".into());
    }
    if args.no_baselines {
        v.push("--no-baselines".into());
    }
    v
}

fn parse(line: &str) -> Option<Message> {
    let (word, rest) = line.split_once(' ')?;
    match word {
        "ready" => rest.parse().ok().map(Message::Ready),
        "progress" => rest.parse().ok().map(Message::Progress),
        "report" => serde_json::from_str(rest).ok().map(|r| Message::Report(Box::new(r))),
        _ => None,
    }
}

/// Handles messages until `done` holds for every client, updating `bar` if given.
fn wait(
    rx: &Receiver<(usize, Message)>,
    clients: &mut [Client],
    done: impl Fn(&Client) -> bool,
    bar: Option<(&ProgressBar, Instant)>,
) {
    while !clients.iter().all(&done) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, m)) => {
                let Some(c) = clients.get_mut(i) else {
                    continue;
                };
                match m {
                    Message::Ready(k) => c.ready = Some(k),
                    Message::Progress(n) => c.progress = n,
                    Message::Report(r) => c.report = Some(*r),
                    Message::Exited => c.exited = true,
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Some((bar, started)) = bar {
            match bar.length() {
                Some(len) if len > 0 && bar.message().is_empty() => {
                    bar.set_position(clients.iter().map(|c| c.progress).sum())
                }
                _ => bar.set_position(started.elapsed().as_millis() as u64),
            }
        }
    }
}

fn progress_bar(args: &Args, config: &str) -> ProgressBar {
    let (len, template) = match args.budget() {
        Budget::Ops(n) => (n * (args.clients * args.threads).max(1) as u64, "{prefix:>23} [{bar:40}] {pos}/{len} ops"),
        Budget::Time(t) => (t.as_millis() as u64, "{prefix:>23} [{bar:40}] {elapsed} {msg}"),
    };
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "),
    );
    bar.set_prefix(config.to_owned());
    if matches!(args.budget(), Budget::Time(_)) {
        bar.set_message("running");
    }
    bar
}

fn assemble(args: &Args, configs: &[Config], reports: Vec<ClientReport>, client_errors: Vec<String>) -> Report {
    let configs: Vec<ConfigReport> = configs
        .iter()
        .map(|config| {
            let clients: Vec<Row> = reports
                .iter()
                .filter_map(|r| r.rows.iter().find(|(name, _)| name == config.name()).map(|(_, row)| row.clone()))
                .collect();
            ConfigReport { name: config.name().into(), total: Row::total(&clients), clients }
        })
        .collect();
    let sum = |f: fn(&Row) -> u64| configs.iter().map(|c| f(&c.total)).sum::<u64>();
    let (verified, corrupted, failed) = (sum(|r| r.verified), sum(|r| r.corrupted), sum(|r| r.failed));
    let complete = reports.len() == args.clients.max(1);
    Report {
        workload: args.workload.name().into(),
        clients: args.clients.max(1),
        threads: args.threads.max(1),
        seed: args.seed,
        size: args.size,
        ops_budget: args.ops,
        seconds_budget: match args.budget() {
            Budget::Time(t) => Some(t.as_secs_f64()),
            Budget::Ops(_) => None,
        },
        ok: complete && client_errors.is_empty() && corrupted == 0 && failed == 0,
        slabinfo: reports.into_iter().map(|r| (r.client, r.slabinfo)).collect(),
        configs,
        verified,
        corrupted,
        failed,
        client_errors,
    }
}

/// The report with the per-row histograms left out (the JSON keeps the percentiles).
fn without_histograms(report: &Report) -> Report {
    let mut r = report.clone();
    for c in &mut r.configs {
        c.total.histogram.clear();
        c.clients.iter_mut().for_each(|row| row.histogram.clear());
    }
    r
}

fn print(report: &Report) {
    let budget = match (report.ops_budget, report.seconds_budget) {
        (Some(n), _) => format!("{n} ops per thread"),
        (None, Some(s)) => format!("{s} s"),
        _ => String::new(),
    };
    println!(
        "loadgen: workload {}, {} client{} x {} thread{}, seed {}, {} per configuration",
        report.workload,
        report.clients,
        if report.clients == 1 { "" } else { "s" },
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.seed,
        budget
    );
    println!();
    print!("{}", report::table(report));
    println!();
    println!("server slabinfo (each client's caches at the end of its memserver run):");
    print!("{}", report::slabinfo(report));
    println!();
    if let Some(total) = report.memserver_total() {
        let shown = |r: Option<f64>| r.map_or_else(|| "- (none)".to_owned(), report::percent);
        println!(
            "magazine hit rate: caches {}, kmalloc {} (all operations {})",
            shown(total.cache_hit_rate),
            shown(total.kmalloc_hit_rate),
            report::percent(total.hit_rate.unwrap_or(0.0))
        );
        println!("IPC calls per 1,000 operations: {:.1}", total.ipc_per_1000_ops.unwrap_or(0.0));
    }
    println!(
        "pattern check: {} objects verified, {} corrupted, {} failures",
        report.verified, report.corrupted, report.failed
    );
    for e in &report.client_errors {
        println!("client failed: {e}");
    }
    println!("result: {}", if report.ok { "OK" } else { "FAILED" });
}
