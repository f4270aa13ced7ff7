//! Bounds checks, sharing through the memfd, and memory really going back on release.

use super::*;

const MIB: usize = 1 << 20;

fn resident_pages_of_this_process() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resident KiB of the one mapping that starts at `base` (its `Rss:` line in /proc/self/smaps):
/// exact for that mapping, whatever other tests in this process do meanwhile.
fn mapping_resident_kib(base: *const u8) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let start = format!("{:x}-", base as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
    assert!(lines.next().is_some(), "mapping {start} not in smaps");
    let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
    rss.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn windows_with(client: ClientId, window_len: usize) -> Windows {
    let mut windows = Windows::new();
    windows.insert(client, ClientMemory::create("test", window_len, PAGE_SIZE).unwrap());
    windows
}

#[test]
fn out_of_range_is_refused_not_a_panic() {
    let w = windows_with(3, 4 * PAGE_SIZE);
    let mut buf = [0u8; 16];
    let end = 4 * PAGE_SIZE as u64;
    assert!(w.read(3, end - 16, &mut buf));
    assert!(!w.read(3, end - 15, &mut buf));
    assert!(!w.read(3, u64::MAX, &mut buf));
    assert!(!w.write(3, u64::MAX - 3, &buf));
    assert!(!w.fill(3, 1, u64::MAX, 0));
    assert!(!w.fill(3, 0, end + 1, 0));
    assert!(!w.read(2, 0, &mut buf), "unknown client");
    assert!(!w.read(ClientId::MAX, 0, &mut buf), "unknown client past the table");
    assert!(!w.control_write(3, PAGE_SIZE as u64 - 15, &buf));
    assert!(w.control_write(3, PAGE_SIZE as u64 - 16, &buf));
    let mut w = w;
    assert_eq!(w.release(3, 4, 1), Err(MemoryError::OutOfRange));
    assert_eq!(w.release(3, u64::MAX, 2), Err(MemoryError::OutOfRange));
    assert_eq!(w.map(3, 3, &[7, 8]), Err(MemoryError::OutOfRange));
    assert_eq!(w.map(3, 2, &[7, 8]), Ok(()));
    assert_eq!(w.map(4, 0, &[1]), Err(MemoryError::NoSuchClient));
    assert_eq!(w.release(3, 0, 0), Ok(()));
}

#[test]
fn read_write_fill_round_trip() {
    let w = windows_with(1, 2 * PAGE_SIZE);
    assert!(w.write(1, 4090, b"0123456789"));
    assert!(w.fill(1, 4092, 2, 0xAA));
    let mut buf = [0u8; 10];
    assert!(w.read(1, 4090, &mut buf));
    assert_eq!(&buf, b"01\xAA\xAA456789");
    assert!(w.control_write(1, 8, b"ctl"));
    let mut c = [0u8; 3];
    assert!(w.control_read(1, 8, &mut c));
    assert_eq!(&c, b"ctl");
}

#[test]
fn memfd_cannot_be_shrunk_by_the_peer() {
    let region = SharedRegion::create("sealed", PAGE_SIZE).unwrap();
    assert!(rustix::fs::ftruncate(region.fd(), 0).is_err());
    assert!(rustix::fs::ftruncate(region.fd(), 2 * PAGE_SIZE as u64).is_err());
}

#[test]
fn a_second_mapping_of_the_memfd_shares_bytes() {
    let w = windows_with(1, PAGE_SIZE);
    let fd = w.get(1).unwrap().window.fd().try_clone_to_owned().unwrap();
    // SAFETY: a fresh kernel-chosen shared mapping of a one-page memfd; unmapped below.
    let other = unsafe {
        rustix::mm::mmap(ptr::null_mut(), PAGE_SIZE, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, &fd, 0)
    }
    .unwrap()
    .cast::<u8>();
    assert!(w.write(1, 100, b"hello"));
    let mut seen = [0u8; 5];
    // SAFETY: `other` maps PAGE_SIZE bytes; 100 + 5 is inside.
    unsafe { ptr::copy_nonoverlapping(other.add(100), seen.as_mut_ptr(), 5) };
    assert_eq!(&seen, b"hello");
    // SAFETY: as above.
    unsafe { ptr::copy_nonoverlapping(b"peer!".as_ptr(), other.add(200), 5) };
    assert!(w.read(1, 200, &mut seen));
    assert_eq!(&seen, b"peer!");
    // SAFETY: the mapping made above, no references into it remain.
    unsafe { rustix::mm::munmap(other.cast(), PAGE_SIZE) }.unwrap();
}

#[test]
fn release_punches_a_hole_and_resident_memory_falls() {
    let len = 32 * MIB;
    let mut w = windows_with(1, len);
    let base = w.get(1).unwrap().window.base.as_ptr();
    let pages = (len / PAGE_SIZE) as u64;
    let process_before = resident_pages_of_this_process();
    assert_eq!(mapping_resident_kib(base), 0, "nothing committed before it is touched");
    assert!(w.fill(1, 0, len as u64, 0x5A));
    let filled = mapping_resident_kib(base);
    let process_filled = resident_pages_of_this_process();
    assert_eq!(w.resident_pages(1).unwrap(), pages);
    w.release(1, 0, pages).unwrap();
    let released = mapping_resident_kib(base);
    let process_released = resident_pages_of_this_process();
    assert_eq!(w.resident_pages(1).unwrap(), 0, "memfd st_blocks back to zero");
    eprintln!(
        "window mapping RSS: filled {filled} KiB, after punch-hole {released} KiB; process RSS: \
         before {} KiB, filled {} KiB, after {} KiB",
        process_before * 4,
        process_filled * 4,
        process_released * 4
    );
    assert_eq!(filled, len as u64 / 1024);
    assert_eq!(released, 0);
    let mut buf = [1u8; 8];
    assert!(w.read(1, 12345, &mut buf));
    assert_eq!(buf, [0; 8], "a released page reads as zero");
}

#[test]
fn private_frames_commit_lazily_and_go_back_to_the_os() {
    // 64 MiB of pool: only what is touched costs memory.
    let mut private = PrivateFrames::new(16_384).unwrap();
    let base = private.frame(0).unwrap().as_ptr();
    assert_eq!(mapping_resident_kib(base), 0);
    for f in 0..256 {
        let bytes = private.frame(f).unwrap();
        assert!(bytes.iter().all(|&b| b == 0), "a fresh private frame reads as zero");
        bytes.fill(0x5a);
    }
    assert_eq!(mapping_resident_kib(base), 1024);
    for f in 0..256 {
        private.release(f).unwrap();
    }
    assert_eq!(mapping_resident_kib(base), 0, "MADV_DONTNEED gave the pages back");
    assert!(private.frame(7).unwrap().iter().all(|&b| b == 0), "a released frame reads as zero");
}

#[test]
fn private_frames_out_of_range_are_refused() {
    let mut private = PrivateFrames::new(4).unwrap();
    assert!(matches!(private.frame(4), Err(MemoryError::OutOfRange)));
    assert!(matches!(private.release(u32::MAX), Err(MemoryError::OutOfRange)));
    assert!(private.frame(3).is_ok());
}
