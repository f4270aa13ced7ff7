//! (d) The server's own memory per pool frame: an idle `memserver` with a 64-client system
//! at 16,384 and at 262,144 pool pages; the difference of its anonymous resident memory
//! (`RssAnon` of /proc/PID/status) over the difference in frames is what each further frame
//! costs. Beside it, the same figure from the engine's table sizes
//! (`EngineStorage::required`), which is what the seL4 memserver reserves.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use memserver_engine::{EngineConfig, EngineStorage};

use crate::server::Binaries;

/// The two pool sizes.
pub const POOLS: [u32; 2] = [16_384, 262_144];
/// Clients of the system, each with an 8,192-page window (the shipped `system.toml`'s).
pub const CLIENTS: usize = 64;
const WINDOW_PAGES: u32 = 8192;
const CACHES_PER_CLIENT: u16 = 32;

/// What the measurement found.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// `RssAnon` of the idle server at each pool size, in bytes.
    pub idle_anon: [Option<u64>; 2],
    /// Bytes per further pool frame, measured.
    pub per_frame: Option<f64>,
    /// Bytes per further pool frame, from the engine's table sizes.
    pub per_frame_tables: f64,
    /// The engine's tables at each pool size, in bytes.
    pub tables: [usize; 2],
}

fn system(pool: u32) -> String {
    memserver_system::SystemText::new(pool)
        .server("max_caches_per_client", CACHES_PER_CLIENT)
        .server("magazine_slots", 16)
        .clients("c", CLIENTS as u32, 4096, WINDOW_PAGES)
        .into()
}

/// The engine's tables for the system at `pool` pages, as the host runner sizes them.
fn tables(pool: u32) -> usize {
    let mut config = EngineConfig::new(pool, (CLIENTS + 1) as u16, WINDOW_PAGES);
    config.max_caches_per_client = CACHES_PER_CLIENT;
    EngineStorage::required(&config).map_or(0, |s| s.bytes())
}

/// `RssAnon` of an idle server at `pool` pages, in bytes.
fn idle_anon(bin: &Binaries, pool: u32) -> Result<u64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("system.toml"), system(pool)).map_err(|e| e.to_string())?;
    let mut child = Command::new(&bin.server)
        .current_dir(dir.path())
        .args(["--system", "system.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line);
    // Settled: listening, nothing to do.
    std::thread::sleep(Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    if !line.contains("listening on") {
        return Err(format!("server at {pool} pages did not start: {line:?}"));
    }
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no RssAnon in /proc/PID/status".into())
}

/// Both figures.
pub fn measure(bin: &Binaries) -> Memory {
    let idle_anon =
        POOLS.map(|pool| idle_anon(bin, pool).map_err(|e| eprintln!("bench: idle memory at {pool} pages: {e}")).ok());
    let frames = f64::from(POOLS[1] - POOLS[0]);
    let per_frame = match idle_anon {
        [Some(a), Some(b)] => Some((b as f64 - a as f64) / frames),
        _ => None,
    };
    let tables = POOLS.map(tables);
    Memory { idle_anon, per_frame, per_frame_tables: (tables[1] - tables[0]) as f64 / frames, tables }
}
