//! memctl: look into a running memserver — its caches in `/proc/slabinfo` form, a refreshing
//! slabtop-like view, every client's statistics as JSON, and a cache's validation.
//!
//! # Design
//! memctl is an ordinary client: it connects as the `memctl` client task of `system.toml`
//! (which has `introspect = true`), and everything it shows comes from three requests —
//! `Clients` (who is connected), `ClientStats` (pool, frames, quota, IPC counts and the
//! magazine counters each client library publishes in its control region) and
//! `SlabInfo { all_clients }`. One [`snapshot::Snapshot`] gathers them; the subcommands only
//! render it: [`slabinfo`] as the kernel's 2.1 text, [`stats`] as JSON or a table, [`top`]
//! as a ratatui view refreshed every interval. `validate` sends one `Validate` (Linux's
//! `/sys/kernel/slab/<cache>/validate`) and prints its report ([`validate`]).

mod slabinfo;
mod snapshot;
mod stats;
mod top;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use memserver_system::System;

/// Inspect a running memserver.
#[derive(Parser, Debug)]
#[command(name = "memctl", version)]
struct Args {
    /// The system description (client ids and names, the default socket path).
    #[arg(long, default_value = "system.toml", global = true)]
    system: PathBuf,
    /// Socket path, overriding `server.socket` of the system description.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// The client task to connect as (it needs `introspect = true` to see other clients).
    #[arg(long, default_value = "memctl", global = true)]
    name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The server's caches in /proc/slabinfo 2.1 format. Without --client every client's
    /// caches are shown, named `<client>/<cache>`.
    Slabinfo {
        /// Only this client's caches, with their plain names.
        #[arg(long)]
        client: Option<String>,
    },
    /// A refreshing slabtop-like view, sorted by cache size; `q` quits.
    Top {
        /// Refresh interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Pool, per-client frames and quota, magazine hit counters and IPC counts.
    Stats {
        /// As JSON (one object) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Checks every object of every slab of one cache, as writing 1 to Linux's
    /// /sys/kernel/slab/<cache>/validate does: red zones (the kmalloc slack included), poison,
    /// counts. What it finds is repaired and reported; the exit status is 1 if it found any.
    Validate {
        /// The client task owning the cache (as named in the system description).
        client: String,
        /// The cache's name (`kmalloc-64`, or one the client created).
        cache: String,
    },
}

/// The command line: parse the arguments and run; the process exit status.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // An empty message: the output already said why (validate found corruption).
            if !message.is_empty() {
                eprintln!("memctl: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let system = System::load(&args.system).map_err(|e| e.to_string())?;
    let socket = system.socket_path(args.socket.as_deref());
    let server = memclient::host::connect(&socket, &args.name).map_err(|e| connect_error(&socket, &args.name, e))?;
    let result = match &args.command {
        Command::Slabinfo { client } => {
            let filter = match client {
                Some(name) => Some(
                    system
                        .client_by_name(name)
                        .map(|(id, _)| id)
                        .ok_or_else(|| format!("no client {name:?} in {}", args.system.display()))?,
                ),
                None => None,
            };
            let snapshot = snapshot::Snapshot::take(&server).map_err(|e| query_error(&args.name, e))?;
            print!("{}", slabinfo::render(&snapshot, filter));
            Ok(())
        }
        Command::Stats { json } => {
            let snapshot = snapshot::Snapshot::take(&server).map_err(|e| query_error(&args.name, e))?;
            if *json {
                println!("{:#}", stats::json(&snapshot));
            } else {
                print!("{}", stats::table(&snapshot));
            }
            Ok(())
        }
        Command::Top { interval_ms } => top::run(&server, &args.name, Duration::from_millis((*interval_ms).max(50))),
        Command::Validate { client, cache } => {
            let id = system
                .client_by_name(client)
                .map(|(id, _)| id)
                .ok_or_else(|| format!("no client {client:?} in {}", args.system.display()))?;
            match server.validate(id, cache) {
                Ok(report) => {
                    print!("{}", validate::render(client, cache, &report));
                    if report.errors > 0 { Err(String::new()) } else { Ok(()) }
                }
                Err(memclient::Error::Server(protocol::Error::NoSuchCache)) => {
                    Err(format!("client {client:?} has no cache {cache:?}"))
                }
                Err(memclient::Error::Server(protocol::Error::InvalidArgument)) => {
                    Err(format!("client {client:?} is not connected"))
                }
                Err(e) => Err(query_error(&args.name, e)),
            }
        }
    };
    let _ = server.goodbye();
    result
}

fn query_error(name: &str, e: memclient::Error) -> String {
    match e {
        memclient::Error::Server(protocol::Error::PermissionDenied) => {
            format!("client {name:?} may not look at other clients (it needs `introspect = true` in system.toml)")
        }
        e => e.to_string(),
    }
}

fn connect_error(socket: &std::path::Path, name: &str, e: memclient::Error) -> String {
    match e {
        memclient::Error::Server(protocol::Error::PermissionDenied) => format!(
            "the server at {} refused client {name:?} (not in its system.toml, or a {name} is already connected)",
            socket.display()
        ),
        e => format!("cannot connect to the memserver at {}: {e}", socket.display()),
    }
}
