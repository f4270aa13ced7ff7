//! Polling instead of sleeping while a client on another CPU is likely to send its next request
//! soon.
//!
//! A thread asleep on one CPU that a message from another CPU wakes up waits for that CPU to leave
//! its idle state: on a 2 vCPU VM, 50–100 µs per wake-up, against 3 µs for a whole round trip on
//! one CPU (`make bench`: the ping-pong rows, pinned and not). A client whose magazines swing past
//! their capacity (a burst of allocations, then of frees) sends an exchange every 64 objects, so it
//! would pay that wake-up twice per exchange. So after serving a client whose hint says it runs on
//! another CPU (the control region's `client_cpu`), the runner polls its epoll set without sleeping
//! for `server.poll_us` (50 µs by default), and says so in that client's `server_cpu` hint
//! ([`SERVER_POLLING`]), so the client spins for its reply instead of sleeping. When no such
//! request came for that long, the runner clears the flag it set and sleeps again.
//!
//! Two tasks on one CPU never poll: the hint names the same CPU, and polling would only keep
//! the other from running. That case costs a request one load of the client's hint and a
//! comparison with the CPU the runner last found itself on (it asks again when the hint
//! differs, and every [`REFRESH_LOOKS`] looks), after every [`HINT_BATCHES`]th batch of
//! the client's requests. The hints are advisory: a client that writes a false `client_cpu`
//! makes the server poll for at most `server.poll_us` after each of its requests, during which it
//! serves every client as it would awake; a client that writes its own `server_cpu` misleads
//! only its own waiting.

use std::time::{Duration, Instant};

use protocol::ClientId;
use protocol::control::{CLIENT_CPU_OFFSET, SERVER_CPU_OFFSET, SERVER_POLLING, cpu_hint};

use crate::memory::Windows;

/// The runner asks which CPU it runs on at least every this many looks at a hint.
pub const REFRESH_LOOKS: u32 = 16;
/// While not polling, a client's hint is looked at after every this many batches of its
/// requests (a client on another CPU starts the polling at most this many requests late),
/// which keeps the cost of a request on one CPU to a few instructions.
pub const HINT_BATCHES: u32 = 8;
const _: () = assert!(crate::runner::AUDIT_BATCHES.is_multiple_of(HINT_BATCHES));

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Polling {
    /// How long to poll after a request of a client on another CPU (zero: never).
    poll_for: Duration,
    /// The CPU hint of where this thread last found itself (0: not asked yet).
    cpu: u32,
    /// Hints looked at since it last asked.
    looks: u32,
    /// Polling until then, if at all.
    until: Option<Instant>,
    /// The clients whose `server_cpu` says [`SERVER_POLLING`].
    told: Vec<ClientId>,
}

impl Polling {
    /// Polling for `poll_for` after each request of a client on another CPU (zero: never).
    pub(super) fn new(poll_for: Duration) -> Self {
        Polling { poll_for, cpu: 0, looks: 0, until: None, told: Vec::new() }
    }

    fn refresh(&mut self) {
        self.looks = 0;
        self.cpu = current_cpu_hint();
    }

    /// A batch of `client`'s requests was served: if the client runs on another CPU, poll for
    /// `poll_for` from now, and tell it so.
    #[inline]
    pub(super) fn served(&mut self, memory: &Windows, client: ClientId) {
        if self.poll_for.is_zero() {
            return;
        }
        let Some(theirs) = memory.control_load_u32(client, CLIENT_CPU_OFFSET) else { return };
        self.looks += 1;
        if theirs == 0 || (theirs == self.cpu && self.told.is_empty() && self.looks < REFRESH_LOOKS) {
            return;
        }
        self.served_elsewhere(memory, client, theirs);
    }

    /// [`Polling::served`] when the hint is not plainly this CPU's.
    fn served_elsewhere(&mut self, memory: &Windows, client: ClientId, theirs: u32) {
        self.refresh();
        let told = self.told.iter().position(|&c| c == client);
        if theirs == self.cpu || self.cpu == 0 {
            if let Some(i) = told {
                self.told.swap_remove(i);
                memory.control_store_u32(client, SERVER_CPU_OFFSET, self.cpu);
            }
            return;
        }
        self.until = Some(Instant::now() + self.poll_for);
        if told.is_none() {
            self.told.push(client);
        }
        memory.control_store_u32(client, SERVER_CPU_OFFSET, self.cpu | SERVER_POLLING);
    }

    /// Whether it polls (then every batch of requests counts).
    #[inline]
    pub(super) fn active(&self) -> bool {
        self.until.is_some()
    }

    /// The timeout of the next wait: zero while polling; `None` (sleep) otherwise, after the
    /// clients told of the polling are told it ended.
    #[inline]
    pub(super) fn timeout(&mut self, memory: &Windows) -> Option<Duration> {
        let until = self.until?;
        self.timeout_while_polling(memory, until)
    }

    fn timeout_while_polling(&mut self, memory: &Windows, until: Instant) -> Option<Duration> {
        if Instant::now() < until {
            return Some(Duration::ZERO);
        }
        self.until = None;
        for client in self.told.drain(..) {
            memory.control_store_u32(client, SERVER_CPU_OFFSET, self.cpu);
        }
        None
    }

    /// `client` is gone (its memory with it).
    pub(super) fn forget(&mut self, client: ClientId) {
        self.told.retain(|&c| c != client);
    }
}

/// [`cpu_hint`] of the CPU this thread runs on (0 if the C library cannot say). glibc reads it
/// from rseq or the vDSO, a few nanoseconds.
fn current_cpu_hint() -> u32 {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).map_or(0, cpu_hint)
}

#[cfg(test)]
mod tests {
    use protocol::PAGE_SIZE;

    use super::*;
    use crate::memory::ClientMemory;

    const CLIENT: ClientId = 3;
    /// The default `server.poll_us`.
    const POLL_FOR: Duration = Duration::from_micros(50);

    fn windows() -> Windows {
        let mut windows = Windows::new();
        windows.insert(CLIENT, ClientMemory::create("polling", PAGE_SIZE, PAGE_SIZE).unwrap());
        windows
    }

    /// Pins the calling thread to the CPU it runs on, so the hints it compares stay true.
    fn pin_here() -> u32 {
        let cpu = current_cpu_hint();
        assert_ne!(cpu, 0, "sched_getcpu failed");
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it, and
        // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize - 1, &mut set);
            assert_eq!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set), 0);
        }
        cpu
    }

    fn hints(windows: &Windows) -> (u32, u32) {
        let load = |offset| windows.control_load_u32(CLIENT, offset).unwrap();
        (load(SERVER_CPU_OFFSET), load(CLIENT_CPU_OFFSET))
    }

    #[test]
    fn a_client_on_this_cpu_or_of_no_hint_starts_no_polling() {
        std::thread::spawn(|| {
            let cpu = pin_here();
            let windows = windows();
            let mut polling = Polling::new(POLL_FOR);
            for hint in [0, cpu] {
                assert!(windows.control_store_u32(CLIENT, CLIENT_CPU_OFFSET, hint));
                for _ in 0..2 * REFRESH_LOOKS {
                    polling.served(&windows, CLIENT);
                    assert!(!polling.active(), "polling for a client of hint {hint} on CPU hint {cpu}");
                    assert_eq!(polling.timeout(&windows), None);
                }
                assert_eq!(hints(&windows), (0, hint), "the server's hint was written");
            }
        })
        .join()
        .expect("the pinned thread panicked");
    }

    #[test]
    fn a_client_on_another_cpu_is_told_of_polling_until_it_ends() {
        std::thread::spawn(|| {
            let cpu = pin_here();
            let elsewhere = cpu % 64 + 1;
            assert_ne!(elsewhere, cpu);
            let windows = windows();
            let mut polling = Polling::new(POLL_FOR);
            assert!(windows.control_store_u32(CLIENT, CLIENT_CPU_OFFSET, elsewhere));
            let served = Instant::now();
            polling.served(&windows, CLIENT);
            assert!(polling.active());
            assert_eq!(hints(&windows), (cpu | SERVER_POLLING, elsewhere));
            let timeout = polling.timeout(&windows);
            if served.elapsed() < POLL_FOR {
                assert_eq!(timeout, Some(Duration::ZERO), "polls while the time lasts");
            }
            std::thread::sleep(POLL_FOR * 2);
            assert_eq!(polling.timeout(&windows), None, "sleeps once the time is up");
            assert!(!polling.active());
            assert_eq!(hints(&windows), (cpu, elsewhere), "the client was told the polling ended");
            // Polling again, then the client moves to this CPU: told at once.
            polling.served(&windows, CLIENT);
            assert_eq!(hints(&windows).0, cpu | SERVER_POLLING);
            assert!(windows.control_store_u32(CLIENT, CLIENT_CPU_OFFSET, cpu));
            polling.served(&windows, CLIENT);
            assert_eq!(hints(&windows).0, cpu, "a client now on this CPU is told");
        })
        .join()
        .expect("the pinned thread panicked");
    }

    #[test]
    fn polling_for_zero_never_polls() {
        let windows = windows();
        let mut polling = Polling::new(Duration::ZERO);
        assert!(windows.control_store_u32(CLIENT, CLIENT_CPU_OFFSET, SERVER_POLLING - 1));
        polling.served(&windows, CLIENT);
        assert!(!polling.active());
        assert_eq!(hints(&windows).0, 0, "told of polling");
    }

    #[test]
    fn a_client_gone_is_told_nothing_more() {
        let mut windows = windows();
        let mut polling = Polling::new(POLL_FOR);
        assert!(windows.control_store_u32(CLIENT, CLIENT_CPU_OFFSET, SERVER_POLLING - 1));
        polling.served(&windows, CLIENT);
        assert!(polling.active(), "a hint of a CPU no thread runs on");
        polling.forget(CLIENT);
        drop(windows.remove(CLIENT));
        std::thread::sleep(POLL_FOR * 2);
        assert_eq!(polling.timeout(&windows), None);
        polling.served(&windows, CLIENT);
        assert!(!polling.active(), "no memory, no hint");
    }
}
