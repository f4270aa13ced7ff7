//! loadgen: the memserver load generator.
//!
//! # Design
//! The parent process spawns itself `--clients` times; each child is one client task of
//! `system.toml` (`loadgen-<i>`), with `--threads` threads sharing its caches. A workload is an
//! operation sequence generated once from `--seed` ([`workload`]); every configuration runs that
//! same sequence: memserver with magazines, memserver with every operation an IPC, glibc
//! `malloc`, mimalloc ([`backend`]). The children start each configuration together, report
//! progress and a JSON result on stdout ([`child`]); the parent shows a progress bar, prints
//! the table (ops/s, sampled latency percentiles, magazine hit rate, IPC per 1,000 operations)
//! and the server's slabinfo ([`report`]), and writes `--json` and `--plot` ([`plot`]).
//! Every object is filled with a pattern and checked before free ([`pattern`]): a lost or
//! shared object makes loadgen exit 1.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod backend;
mod child;
mod parent;
mod pattern;
mod plot;
mod report;
mod runner;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use backend::Config;
use runner::Budget;
pub use runner::Sampler;
use workload::Workload;

/// Seconds per configuration when neither --seconds nor --ops is given.
const DEFAULT_SECONDS: f64 = 3.0;

/// The memserver load generator: one workload against memserver (with and without magazines),
/// glibc malloc and mimalloc, from several client processes.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// The workload.
    #[arg(long, value_enum, default_value = "mixed")]
    pub workload: Workload,
    /// Client processes, each the client task `loadgen-<i>` of the system description.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Threads per client process (sharing its caches).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds each configuration runs (default 3 unless --ops is given).
    #[arg(long, conflicts_with = "ops")]
    pub seconds: Option<f64>,
    /// Operations each thread runs per configuration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Object size in bytes (all workloads but `mixed`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub size: u32,
    /// Use memserver without magazines (every operation an IPC) instead of with them.
    #[arg(long)]
    pub no_magazines: bool,
    /// Run memserver only: no glibc, mimalloc or other-memserver baseline.
    #[arg(long)]
    pub no_baselines: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG latency CDF (one line per configuration) to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Seed of the operation sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The server's socket (default: `server.socket` of the system description).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The system description.
    #[arg(long, default_value = "system.toml")]
    pub system: PathBuf,
    /// Run as client process <i> (set by the parent).
    #[arg(long, hide = true)]
    pub child: Option<usize>,
}

impl Args {
    /// The per-configuration budget.
    pub fn budget(&self) -> Budget {
        match (self.ops, self.seconds) {
            (Some(n), _) => Budget::Ops(n),
            (None, s) => Budget::Time(Duration::from_secs_f64(s.unwrap_or(DEFAULT_SECONDS).max(0.001))),
        }
    }

    /// The configurations, the memserver one first.
    pub fn configs(&self) -> Vec<Config> {
        let (main, other) = if self.no_magazines {
            (Config::MemserverNoMagazines, Config::Memserver)
        } else {
            (Config::Memserver, Config::MemserverNoMagazines)
        };
        if self.no_baselines {
            return vec![main];
        }
        let mut configs = vec![main, Config::Glibc, Config::Mimalloc];
        // "--no-magazines": every memserver operation an IPC, so no magazine run at all.
        if !self.no_magazines {
            configs.insert(1, other);
        }
        configs
    }

    /// The server's socket: `--socket`, else the system description's.
    pub fn socket_path(&self) -> Result<PathBuf, String> {
        if let Some(socket) = &self.socket {
            return Ok(socket.clone());
        }
        let system = memserver_system::System::load(&self.system).map_err(|e| e.to_string())?;
        Ok(system.socket_path(None))
    }
}

/// The command line: parse the arguments and run; the process exit status.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let configs = args.configs();
    if let Some(index) = args.child {
        return match child::run(&args, index, &configs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match parent::run(&args, &configs) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
