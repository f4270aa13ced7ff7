//! Attack on the host's memory grant (issue 10): a client dirties every page of its window,
//! far beyond the pages the server granted it, again and again.
//!
//! What the suite sees from the client's side, in the kernel's own figures: the `Rss` of the
//! client's mapping of its window (`/proc/self/smaps`), which falls when the server punches
//! the pages out of the memfd, and the server's `Stats` of the attacker (granted, resident,
//! violations). The attacker keeps patterned objects in its granted pages: the audit must not
//! touch them.

use std::time::Duration;

use protocol::api::CallError;

use crate::host::mapping_resident_kib;
use crate::peer::{Failure, Peer, ok};
use crate::world::{AUDIT_SLACK_PAGES, World};

const PAGE: u64 = 4096;

/// How long the suite waits for the audit to act (a liveness bound, not a speed check).
const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// The attacker's figures after one round.
struct Round {
    dirty_kib: u64,
    after_kib: u64,
    stats: protocol::Stats,
}

/// Dirties every byte of the window, rewrites the attacker's own objects, then makes requests
/// until what stays resident (the mapping's `Rss`, and the server's count) is within the grant
/// plus the slack (`Ok(None)` once the server closed the connection). The timer may audit in
/// the middle of the dirtying, so a round may count more than one violation.
fn dirty_round(a: &mut Peer, objects: &[(u64, u8)], object_len: usize) -> Result<Option<Round>, Failure> {
    let window = a.connection().window_len();
    if !a.write(0, &vec![0xd1; window]) {
        return Err("cannot write the window".into());
    }
    for &(at, seed) in objects {
        a.write(at, &vec![seed; object_len]);
    }
    let base = a.connection().window_base();
    let dirty_kib = mapping_resident_kib(base);
    let start = std::time::Instant::now();
    loop {
        let stats = match a.stats() {
            Ok(stats) => stats,
            Err(CallError::Transport(_)) => return Ok(None),
            Err(e) => return Err(format!("stats refused: {e:?}")),
        };
        let after_kib = mapping_resident_kib(base);
        let held_kib = (u64::from(stats.granted_pages) + AUDIT_SLACK_PAGES) * PAGE / 1024;
        if after_kib <= held_kib && u64::from(stats.resident_pages) * PAGE / 1024 <= held_kib {
            return Ok(Some(Round { dirty_kib, after_kib, stats }));
        }
        if start.elapsed() > AUDIT_WAIT {
            return Err(format!(
                "window still {after_kib} KiB resident after {AUDIT_WAIT:?} (whole window {} KiB, grant and \
                 slack {held_kib} KiB): nothing holds the client to its grant",
                window as u64 / 1024
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Attack (issue 10): a client with a 32-page quota dirties all 64 pages of its window, round
/// after round. Each time the server punches every page it did not grant (the attacker's own
/// objects keep their bytes), counts a violation, and after the configured number of
/// violations (3) disconnects and reclaims it, emptying the whole window even though the
/// attacker still maps it. The other clients notice nothing (the runner's checks).
pub fn dirty_whole_window(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let object_len = 256usize;
    let c = ok("create", a.create("a-dirty", object_len as u32, 0, 0))?;
    let mut objects = Vec::new();
    for i in 0..4u8 {
        let h = ok("alloc", a.alloc(c.cache))?;
        objects.push((h.handle.0, 0x30 + i));
    }
    let window_kib = a.connection().window_len() as u64 / 1024;
    let base = a.connection().window_base();
    let mut rounds = 0u32;
    let mut violations = 0u32;
    let mut figures = Vec::new();
    loop {
        rounds += 1;
        if rounds > 20 {
            return Err(format!("still connected after {} rounds of dirtying ({})", rounds - 1, figures.join("; ")));
        }
        let Some(round) = dirty_round(&mut a, &objects, object_len)? else { break };
        let s = round.stats;
        figures.push(format!(
            "round {rounds}: {} KiB dirty -> {} KiB (server: granted {}, resident {} pages, {} violations)",
            round.dirty_kib, round.after_kib, s.granted_pages, s.resident_pages, s.grant_violations
        ));
        if s.granted_pages != s.client_pages || s.grant_violations <= violations {
            return Err(format!(
                "round {rounds}: granted {} pages, engine {}; {} violations counted (were {violations})",
                s.granted_pages, s.client_pages, s.grant_violations
            ));
        }
        violations = s.grant_violations;
        for &(at, seed) in &objects {
            if a.read(at, object_len) != Some(vec![seed; object_len]) {
                return Err(format!("round {rounds}: the audit changed the attacker's own object {at:#x}"));
            }
        }
    }
    // Reclaimed: the server punched the whole window and let go of it (its mapping and its fd).
    // Whatever the attacker writes into its stale mapping after that is the attacker's own
    // memory, charged to the attacker's process, not held by the server — and the timer may
    // have disconnected it in the middle of its last round of writes, so the residue it sees
    // in its own mapping is reported, not judged.
    let server_pid = w.server.child.id();
    let start = std::time::Instant::now();
    let window_name = "memserver-window-hostile-1";
    let mut still_mapped = true;
    while still_mapped && start.elapsed() < AUDIT_WAIT {
        let maps = std::fs::read_to_string(format!("/proc/{server_pid}/maps")).map_err(|e| e.to_string())?;
        still_mapped = maps.contains(window_name);
        if still_mapped {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let left = mapping_resident_kib(base);
    println!(
        "    dirty_whole_window: window {window_kib} KiB, quota 32 pages, slack {AUDIT_SLACK_PAGES} pages; {}; \
         round {rounds}: disconnected (violations_max = 3 reached); the server no longer maps the window; \
         {left} KiB resident in the attacker's own stale mapping (its own memory now)",
        figures.join("; ")
    );
    if still_mapped {
        return Err(format!("the server still maps {window_name} {AUDIT_WAIT:?} after the disconnect"));
    }
    drop(a);
    Ok(())
}

/// A raw admitted connection that keeps the memfds the `Hello` reply carries.
struct RawClient {
    socket: std::os::fd::OwnedFd,
    window: std::os::fd::OwnedFd,
}

impl RawClient {
    fn connect(w: &World, name: &str) -> Result<RawClient, Failure> {
        use rustix::net::{AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix};
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| e.to_string())?;
        rustix::net::connect(&socket, &SocketAddrUnix::new(w.socket()).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let hello = crate::peer::hello_bytes(name, protocol::PROTOCOL_VERSION);
        rustix::net::send(&socket, &hello, rustix::net::SendFlags::NOSIGNAL).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1024];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        rustix::net::recvmsg(&socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).map_err(|e| e.to_string())?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        let window = fds.into_iter().next().ok_or("no window memfd with the Hello reply")?;
        Ok(RawClient { socket, window })
    }

    fn stats(&self) -> Result<Option<protocol::Stats>, Failure> {
        let request = crate::peer::encode(&protocol::Request::Stats);
        if rustix::net::send(&self.socket, &request, rustix::net::SendFlags::NOSIGNAL).is_err() {
            return Ok(None);
        }
        let mut buf = [0u8; 1024];
        match rustix::net::recv(&self.socket, &mut buf, rustix::net::RecvFlags::empty()) {
            Ok((0, _)) | Err(_) => Ok(None),
            Ok((n, _)) => match protocol::decode_reply(&buf[..n]) {
                Ok(protocol::Reply::Stats(s)) => Ok(Some(s)),
                other => Err(format!("stats answered with {other:?}")),
            },
        }
    }

    /// Pages the window memfd holds, as the kernel counts them.
    fn resident_pages(&self) -> Result<u64, Failure> {
        let blocks = rustix::fs::fstat(&self.window).map_err(|e| e.to_string())?.st_blocks;
        Ok(u64::try_from(blocks).unwrap_or(0) * 512 / PAGE)
    }
}

/// Attack (issue 10): a client commits its whole window without writing a byte, by
/// `fallocate` on the window memfd it received (such pages are holes to `lseek(SEEK_DATA)` but
/// memory all the same). The server takes them back as it does written pages.
pub fn fallocate_whole_window(w: &mut World) -> Result<(), Failure> {
    let a = RawClient::connect(w, "hostile-2")?;
    let len = rustix::fs::fstat(&a.window).map_err(|e| e.to_string())?.st_size as u64;
    rustix::fs::fallocate(&a.window, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len).map_err(|e| e.to_string())?;
    let committed = a.resident_pages()?;
    let start = std::time::Instant::now();
    loop {
        let Some(stats) = a.stats()? else { return Err("disconnected after one violation".into()) };
        let now = a.resident_pages()?;
        if now <= u64::from(stats.granted_pages) && stats.grant_violations == 1 {
            println!(
                "    fallocate_whole_window: {committed} pages committed by fallocate -> {now} (granted {}, 1 violation)",
                stats.granted_pages
            );
            return Ok(());
        }
        if start.elapsed() > AUDIT_WAIT {
            return Err(format!("{now} of {committed} fallocated pages still committed after {AUDIT_WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Attack (issue 10): a client frees a large kmalloc (40 pages) and goes on writing it, the
/// host's use after free. The pages went back to the pool when it freed them; writing them
/// again commits memory the client was not granted, which the server punches out again (the
/// client reads zeroes) and counts as a violation.
pub fn write_after_kfree(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-0")?;
    let len = 40 * PAGE as usize;
    let h = ok("kmalloc", a.kmalloc(len as u32))?.handle;
    a.write(h.0, &vec![0x77; len]);
    ok("kfree", a.kfree(h))?;
    a.write(h.0, &vec![0x78; len]);
    let start = std::time::Instant::now();
    loop {
        let stats = ok("stats", a.stats())?;
        if stats.grant_violations == 1 {
            // Read only now: reading a punched page commits it again (a zero page).
            let back = a.read(h.0 + (len as u64) / 2, 8).ok_or("outside the window")?;
            if back != [0; 8] || stats.resident_pages > stats.granted_pages {
                return Err(format!(
                    "after the violation: {back:02x?}; resident {} granted {}",
                    stats.resident_pages, stats.granted_pages
                ));
            }
            println!(
                "    write_after_kfree: 40 freed pages written again -> punched (resident {} of {} granted, 1 violation)",
                stats.resident_pages, stats.granted_pages
            );
            break;
        }
        if start.elapsed() > AUDIT_WAIT {
            return Err(format!(
                "the freed pages stay written; resident {} granted {} violations {}",
                stats.resident_pages, stats.granted_pages, stats.grant_violations
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    a.close();
    Ok(())
}
