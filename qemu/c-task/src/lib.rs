//! The runtime of seL4 client tasks whose program is C: opens the task's session for the C
//! API (`memclient-c`, built without `std`), calls the program's `main`, and checks what it
//! did.
//!
//! Design: the C program is the same source as on Linux (`examples/c/hash_table.c`),
//! compiled freestanding by qemu/Makefile with `aarch64-linux-gnu-gcc` (no glibc) and linked
//! into the task image with `memclient-c`'s `kmem_cache_*` functions (`build.rs`). What a C
//! program expects beyond that comes from here, minimal: `printf`/`fprintf` on the kernel's
//! debug console (`libc/stdio.c`, over [`memserver_sel4_console_write`]), `memset`, `memcpy`,
//! `memcmp`, `strlen` (Rust's compiler-builtins), the headers in `include/`. Before `main`
//! the Rust entry opens the task's own client session and installs it as the C API's
//! (`memclient_c::session::install`): C code written for the kernel needs no setup call. The
//! library's own `Box`es and messages come from the task's heap client, like every task's.
//! After `main` it checks, from the library's counts and from the server's: `main` returned
//! 0, every cache the program created was destroyed, every object it allocated was freed, the
//! server sees no live object and no cache of the program left, and the debug flags were in
//! effect exactly when compiled in (every allocation an IPC with them; magazine hits
//! without). It reports its failures to the root task, so `TEST_PASS` needs both programs.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ffi::{c_char, c_int};

use memclient::Memserver;
use memclient_c::session::{BoxedTransport, SessionTransport};
use memserver_sel4_abi::ClientBoot;
use memserver_sel4_abi::start::SLOT_MEMSERVER;

unsafe extern "C" {
    /// The C program's `int main(void)`.
    #[link_name = "main"]
    fn c_main() -> c_int;
}

/// Writes `len` bytes at `bytes` to the kernel's debug console: the C runtime's output
/// (`libc/stdio.c`).
///
/// # Safety
/// `bytes .. bytes + len` is readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memserver_sel4_console_write(bytes: *const c_char, len: usize) {
    if bytes.is_null() {
        return;
    }
    // SAFETY: the caller guarantees the range is readable.
    let text = unsafe { core::slice::from_raw_parts(bytes.cast::<u8>(), len) };
    for &byte in text {
        sel4::debug_put_char(byte);
    }
}

/// The C program a task image runs.
pub struct Program {
    /// How the log names it.
    pub name: &'static str,
    /// Whether it was compiled with its debug flags (`-DDEBUG`).
    pub debug_flags: bool,
}

/// What the server and the library had counted, before or after `main`.
#[derive(Clone, Copy)]
struct Snapshot {
    server: protocol::Stats,
    magazine: memclient::CounterSnapshot,
    calls: memclient_c::counters::CallCounters,
}

fn snapshot(server: &Memserver<SessionTransport>) -> Result<Snapshot, &'static str> {
    Ok(Snapshot {
        server: server.stats().map_err(|_| "stats")?,
        magazine: server.counters(),
        calls: memclient_c::counters::snapshot(),
    })
}

/// Runs `program` as client `boot.session`, checks it, reports to the root task.
pub fn run(boot: ClientBoot, root: sel4::cap::Endpoint, program: Program) -> ! {
    let task = boot.session.name.as_str();
    let failures = match run_checked(&boot, &program) {
        Ok(failures) => failures,
        Err(why) => {
            sel4::debug_println!("{task}: FAILED: {why}");
            1
        }
    };
    sel4::debug_println!("{task}: {} done, {failures} failure(s)", program.name);
    memserver_task_client::report(root, failures)
}

fn run_checked(boot: &ClientBoot, program: &Program) -> Result<u64, &'static str> {
    let task = boot.session.name.as_str();
    memclient_c::console::set_output(|line| sel4::debug_println!("{line}"));
    let server = memserver_task_client::open_with(SLOT_MEMSERVER, &boot.session, BoxedTransport::new)?;
    let server = memclient_c::session::install(server).map_err(|_| "a C API session was installed already")?;
    let before = snapshot(server)?;
    sel4::debug_println!(
        "{task}: calling main() of {} (client {} {task}, debug flags {})",
        program.name,
        server.client_id(),
        if program.debug_flags { "on" } else { "off" }
    );
    // SAFETY: the C program's main takes no arguments and is called once, with the C API's
    // session installed; it is single-threaded C over the library's functions.
    let status = unsafe { c_main() };
    let after = snapshot(server)?;
    Ok(check(task, program, status, &before, &after))
}

/// The checks after `main`; returns the failures.
fn check(task: &str, program: &Program, status: c_int, before: &Snapshot, after: &Snapshot) -> u64 {
    let calls = after.calls;
    let (server_allocs, server_caches) = (after.server.allocs - before.server.allocs, after.server.caches);
    let hits = after.magazine.alloc_hits - before.magazine.alloc_hits;
    sel4::debug_println!(
        "{task}: main() returned {status}; the C calls created {} cache(s) and destroyed {}, allocated {} object(s) and freed {}; \
         the server: {} allocation IPC(s), {hits} magazine hit(s), {} live object(s), {} cache(s) ({} before main)",
        calls.caches_created,
        calls.caches_destroyed,
        calls.objects_allocated,
        calls.objects_freed,
        server_allocs,
        after.server.live_objects,
        server_caches,
        before.server.caches
    );
    let mut failures = 0;
    let mut fail = |why: &str| {
        sel4::debug_println!("{task}: FAILED: {why}");
        failures += 1;
    };
    if status != 0 {
        fail("main() did not return 0");
    }
    if calls.caches_created == 0 || calls.caches_created != calls.caches_destroyed {
        fail("the program's caches were not all created and destroyed");
    }
    if calls.objects_allocated == 0 || calls.objects_allocated != calls.objects_freed {
        fail("the program's objects were not all allocated and freed");
    }
    if after.server.live_objects != 0 || server_caches != before.server.caches {
        fail("the server still holds objects or caches of the program");
    }
    // Debug caches get no magazines: every allocation is an IPC the server counts. Without
    // the flags, the magazines serve them.
    let flags_in_effect = if program.debug_flags {
        server_allocs >= calls.objects_allocated && hits == 0
    } else {
        hits > 0 && server_allocs < calls.objects_allocated
    };
    if !flags_in_effect {
        fail("the cache's debug flags were not what the program was compiled with");
    }
    failures
}
