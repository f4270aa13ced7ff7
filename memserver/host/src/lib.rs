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
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod connection;
pub mod host_service;
pub mod listener;
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
    let listener = listener::Listener::bind(&path).map_err(|e| e.to_string())?;
    if listener.replaced_stale {
        eprintln!("memserver: replaced stale socket {} (no server was listening on it)", listener.path().display());
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
    match stop {
        Ok(runner::Stop::Signal(signal)) => {
            eprintln!("memserver: signal {signal} received, shut down cleanly");
            Ok(())
        }
        Err(e) => Err(format!("event loop failed: {e}")),
    }
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
