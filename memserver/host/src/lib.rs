//! memserver-host: the Linux host runner of the memory server (the `memserver` binary is `main.rs`).
//!
//! # Design
//! A thin binary: it reads `system.toml` ([`memserver_system::System`]), binds a Unix
//! `SOCK_SEQPACKET` socket ([`listener`]), and runs one single-threaded epoll loop
//! ([`runner`]) that admits clients, gives each its window and control region as `memfd`s
//! passed with `SCM_RIGHTS` ([`memory`]), and hands every request to a [`service::Service`],
//! the narrow interface behind which the protocol layer and the no_std engine sit. SIGINT and
//! SIGTERM arrive through a signalfd in the same epoll set ([`signals`]) and end the loop
//! cleanly: every client is disconnected, the socket file removed.
//!
//! The trust boundary lives here too: a connection is admitted as a client task only if the
//! kernel's credentials of its peer are that task's [`identity`]; connections not admitted yet
//! have a bounded pool of their own; each window is [`audit`]ed against the pages the engine
//! [`grants`], so a client keeps no more memory resident than it was given (plus one slab);
//! and the server's [`log`] never blocks the loop.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod audit;
pub mod connection;
pub mod grants;
pub mod host_service;
pub mod identity;
pub mod listener;
pub mod log;
pub mod memory;
pub mod runner;
pub mod service;
pub mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memserver_system::System;

/// Binds the socket and runs `service` until SIGINT/SIGTERM.
pub fn serve(system: &System, socket: Option<&std::path::Path>, service: impl service::Service) -> Result<(), String> {
    // Block the signals before anything else so none is lost between bind and the loop.
    let signals = signals::Signals::termination().map_err(|e| format!("cannot set up signal handling: {e}"))?;
    let path = system.socket_path(socket);
    let listener = listener::Listener::bind(&path, system.server.socket_mode).map_err(|e| e.to_string())?;
    log::start().map_err(|e| format!("cannot start the log writer: {e}"))?;
    use log::Source;
    if listener.replaced_stale {
        log::line(
            Source::Server,
            format_args!("replaced stale socket {} (no server was listening on it)", listener.path().display()),
        );
    }
    if let Some(warning) = shmem_huge_pages_warning() {
        log::line(Source::Server, format_args!("{warning}"));
    }
    let mut runner = runner::Runner::new(system, service, Some(listener), Some(signals))
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    println!(
        "memserver: listening on {} ({} clients, pool {} pages)",
        path.display(),
        system.clients.len(),
        system.server.pool_pages
    );
    let stop = runner.run();
    runner.shutdown();
    let result = match stop {
        Ok(runner::Stop::Signal(signal)) => {
            log::line(Source::Server, format_args!("signal {signal} received, shut down cleanly"));
            Ok(())
        }
        Err(e) => Err(format!("event loop failed: {e}")),
    };
    // Bounded: a stderr nobody reads must not keep the server from exiting.
    log::flush(std::time::Duration::from_secs(1));
    result
}

/// A warning if the kernel backs shared memory with transparent huge pages
/// (`shmem_enabled` of `always`, `within_size` or `force`): a client touching one granted page
/// may then commit a 2 MiB folio, which the window audit would count against it.
fn shmem_huge_pages_warning() -> Option<String> {
    let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled").ok()?;
    let chosen = setting.split_whitespace().find(|w| w.starts_with('['))?.trim_matches(['[', ']']);
    matches!(chosen, "always" | "within_size" | "force").then(|| {
        format!(
            "warning: transparent_hugepage/shmem_enabled is [{chosen}]: window pages may be committed 2 MiB at a \
             time and counted as violations of a client's grant (set it to never or advise)"
        )
    })
}

/// The memserver host runner: serves the clients of a system description over a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "memserver", version)]
struct Args {
    /// The system description.
    #[arg(long, default_value = "system.toml")]
    system: PathBuf,
    /// Socket path, overriding `server.socket` of the system description.
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// The `memserver` command line: parse the arguments, load the system description, serve until
/// SIGINT or SIGTERM. Exit status 2 for a bad description, 1 for a failure while serving.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let system = match System::load(&args.system) {
        Ok(system) => system,
        Err(e) => {
            eprintln!("memserver: {e}");
            return ExitCode::from(2);
        }
    };
    let served = match host_service::HostService::new(&system) {
        Ok(service) => serve(&system, args.socket.as_deref(), service),
        Err(message) => {
            eprintln!("memserver: {message}");
            return ExitCode::from(2);
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("memserver: {message}");
            ExitCode::FAILURE
        }
    }
}
