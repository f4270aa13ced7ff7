//! Validation (`Validate`, Linux's `validate_slab_cache()`), with the cases of Linux's
//! `lib/slub_kunit.c`, and the `slub_debug` setting of a client (`conformance-debug` has
//! `slub_debug = "FZPU,kmalloc-*"`).
//!
//! Error counts: the server counts each corrupted region of an object once (and repairs it);
//! Linux's kunit `slab_errors` counts a report and a fix for each, so each Linux expectation of
//! 2 is 1 here, and Linux's 0 is 0.

use protocol::flags::{
    POISON_FREE, RED_ACTIVE, RED_INACTIVE, SLAB_CONSISTENCY_CHECKS, SLAB_DEBUG, SLAB_POISON, SLAB_RED_ZONE,
    SLAB_STORE_USER,
};
use protocol::{CacheId, Corruption, Error, Finding, Handle, ValidationReport};

use super::{CLIENT, DEBUG, PEER, connect};
use crate::client::{Client, Failure, any_err, err, ok};
use crate::ensure;
use crate::harness::Harness;

/// `Validate` of this client's cache `name`.
fn validate(c: &mut Client, name: &str) -> Result<ValidationReport, Failure> {
    let id = c.id;
    ok("validate", c.validate(id, protocol::cache_name(name).map_err(|e| alloc::format!("{e}"))?))
}

/// The report must be exactly one corrupted region, the one given.
fn one_error(report: &ValidationReport, want: Finding) -> Result<(), Failure> {
    ensure!(report.errors == 1, "{} errors, want 1 (Linux's 2: a report and a fix): {report:?}", report.errors);
    ensure!(report.first == Some(want), "first finding {:?}, want {want:?}", report.first);
    Ok(())
}

fn corruption(cache: CacheId, object: Handle, offset: i32, found: u8, expected: u8) -> Corruption {
    Corruption { cache, object, offset, found, expected }
}

/// `test_clobber_zone`: a byte written past an allocated red-zoned object.
pub fn clobber_zone(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("TestSlub_RZ_alloc", 64, 0, SLAB_RED_ZONE, false))?.cache;
    let p = ok("alloc", c.alloc(s))?.handle;
    c.write(p, 64, &[0x12])?;
    one_error(&validate(&mut c, "TestSlub_RZ_alloc")?, Finding::RedZone(corruption(s, p, 64, 0x12, RED_ACTIVE)))?;
    ensure!(validate(&mut c, "TestSlub_RZ_alloc")?.errors == 0, "not repaired");
    ok("free", c.free(s, p))?;
    ok("destroy", c.destroy(s))?;
    Ok(())
}

/// `test_first_word`: the first byte of a freed poisoned object.
pub fn first_word(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("TestSlub_1th_word_free", 64, 0, SLAB_POISON, false))?.cache;
    let p = ok("alloc", c.alloc(s))?.handle;
    ok("free", c.free(s, p))?;
    c.write(p, 0, &[0x78])?;
    let report = validate(&mut c, "TestSlub_1th_word_free")?;
    one_error(&report, Finding::Poison(corruption(s, p, 0, 0x78, POISON_FREE)))?;
    ensure!(validate(&mut c, "TestSlub_1th_word_free")?.errors == 0, "not repaired");
    ok("destroy", c.destroy(s))?;
    Ok(())
}

/// `test_clobber_50th_byte`.
pub fn clobber_50th_byte(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("TestSlub_50th_word_free", 64, 0, SLAB_POISON, false))?.cache;
    let p = ok("alloc", c.alloc(s))?.handle;
    ok("free", c.free(s, p))?;
    c.write(p, 50, &[0x9a])?;
    let report = validate(&mut c, "TestSlub_50th_word_free")?;
    one_error(&report, Finding::Poison(corruption(s, p, 50, 0x9a, POISON_FREE)))?;
    ok("destroy", c.destroy(s))?;
    Ok(())
}

/// `test_clobber_redzone_free`: a byte written past a freed red-zoned object.
pub fn clobber_redzone_free(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("TestSlub_RZ_free", 64, 0, SLAB_RED_ZONE, false))?.cache;
    let p = ok("alloc", c.alloc(s))?.handle;
    ok("free", c.free(s, p))?;
    c.write(p, 64, &[0xab])?;
    one_error(&validate(&mut c, "TestSlub_RZ_free")?, Finding::RedZone(corruption(s, p, 64, 0xab, RED_INACTIVE)))?;
    ok("destroy", c.destroy(s))?;
    Ok(())
}

/// `test_leak_destroy`: Linux reports the leaked object and destroys the cache anyway (2
/// errors); here the destroy is refused with the live count and the cache stays intact, valid
/// and usable (the project's rule: destroy of a busy cache changes nothing).
pub fn leak_destroy(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("TestSlub_leak_destroy", 64, 0, 0, false))?.cache;
    let p = ok("alloc", c.alloc(s))?.handle;
    err("destroy with a leaked object", c.destroy(s), Error::CacheBusy { live: 1 })?;
    ensure!(validate(&mut c, "TestSlub_leak_destroy")?.errors == 0, "the cache was damaged");
    ok("still usable", c.alloc(s))?;
    ok("free", c.free(s, p))?;
    Ok(())
}

/// Each corrupted region counts once: one object with both red zones written and a free one
/// with its poison written are three errors, and all three are repaired.
pub fn each_corrupted_region_counts_once(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s = ok("create", c.create("regions", 64, 0, SLAB_RED_ZONE | SLAB_POISON, false))?.cache;
    let a = ok("alloc", c.alloc(s))?.handle;
    let b = ok("alloc", c.alloc(s))?.handle;
    ok("free", c.free(s, b))?;
    c.write(Handle(a.0 - 1), 0, &[0])?;
    c.write(a, 64, &[0, 0, 0])?;
    c.write(b, 10, &[0; 20])?;
    let report = validate(&mut c, "regions")?;
    let per_slab = ok("info", c.cache_info(s))?.layout.objects_per_slab;
    ensure!((report.errors, report.slabs, report.objects) == (3, 1, per_slab), "{report:?}");
    ensure!(report.first == Some(Finding::RedZone(corruption(s, a, -1, 0, RED_ACTIVE))), "{report:?}");
    ensure!(validate(&mut c, "regions")?.errors == 0, "not all repaired");
    ok("free", c.free(s, a))?;
    Ok(())
}

/// Validating another client's cache needs introspection rights (like its statistics); an
/// unknown name is `NoSuchCache`, an id without a session `InvalidArgument`.
pub fn validate_of_another_clients_cache_needs_introspection(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let mut peer = connect(h, PEER)?;
    ok("create", c.create("mine", 64, 0, 0, false))?;
    let name = |n: &str| protocol::cache_name(n).map_err(|e| alloc::format!("{e}"));
    err("validate of the peer's cache", c.validate(peer.id, name("kmalloc-64")?), Error::PermissionDenied)?;
    let mine = c.id;
    let report = ok("the peer (introspect) validates ours", peer.validate(mine, name("mine")?))?;
    ensure!(report.errors == 0, "{report:?}");
    err("unknown name", c.validate(mine, name("nothing")?), Error::NoSuchCache)?;
    err("no such client", peer.validate(999, name("mine")?), Error::InvalidArgument)?;
    Ok(())
}

/// `slub_debug = "FZPU,kmalloc-*"`: the client's kmalloc caches are debug caches (every flag,
/// no magazine slot), its own caches are not unless their names match.
pub fn slub_debug_makes_kmalloc_caches_debug_caches(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, DEBUG)?;
    let layout = c.control_layout()?;
    let mut kmalloc = 0;
    for index in 0..layout.caches {
        let entry = c.cache_entry(index)?;
        if entry.cache == 0 {
            continue;
        }
        kmalloc += 1;
        ensure!(
            entry.flags & SLAB_DEBUG == SLAB_DEBUG,
            "kmalloc class {}: flags {:#x}",
            entry.kmalloc_class,
            entry.flags
        );
        ensure!(entry.slot == protocol::control::NO_SLOT, "a debug kmalloc cache got a magazine slot");
    }
    ensure!(kmalloc == 13, "{kmalloc} kmalloc caches");
    let mine = ok("create", c.create("mine", 64, 0, 0, false))?;
    ensure!(!mine.debug && mine.slot.is_some(), "a cache not named by slub_debug became a debug cache");
    let named = ok("create", c.create("kmalloc-like", 64, 0, 0, false))?;
    ensure!(named.debug, "a cache matching kmalloc-* is a debug cache");
    let flags = ok("info", c.cache_info(named.cache))?.flags;
    ensure!(flags & (SLAB_CONSISTENCY_CHECKS | SLAB_STORE_USER) != 0, "flags {flags:#x}");
    Ok(())
}

/// With red zones the slack between the requested size and the class size is red zone too
/// (Linux's `orig_size`): writing past `kmalloc(18)` inside its 32-byte object is caught on
/// free, reported at its offset, and repaired.
pub fn kmalloc_slack_is_red_zone(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, DEBUG)?;
    let p = ok("kmalloc(18)", c.kmalloc(18))?.handle;
    let slack = c.read(p, 18, 14)?;
    ensure!(slack.iter().all(|&b| b == RED_ACTIVE), "slack of kmalloc(18): {slack:02x?}");
    c.write(p, 0, &[0x5a; 18])?;
    c.write(p, 20, &[0xab])?;
    match any_err("kfree after writing the slack", c.kfree(p))? {
        Error::RedZoneCorrupted(found) => {
            ensure!((found.offset, found.found, found.expected) == (20, 0xab, RED_ACTIVE), "{found:?}");
        }
        other => return Err(alloc::format!("expected RedZoneCorrupted, got {other:?}")),
    }
    ok("kfree once repaired", c.kfree(p))?;
    Ok(())
}

/// `test_kmalloc_redzone_access`: two bytes of the slack of `kmalloc(18)` in a 32-byte object.
pub fn kmalloc_redzone_access(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, DEBUG)?;
    let p = ok("kmalloc(18)", c.kmalloc(18))?.handle;
    c.write(p, 18, &[0xab, 0xab])?;
    let report = validate(&mut c, "kmalloc-32")?;
    let Some(Finding::RedZone(found)) = report.first else { return Err(alloc::format!("{report:?}")) };
    ensure!(report.errors == 1, "{report:?}");
    ensure!((found.object, found.offset, found.found) == (p, 18, 0xab), "{found:?}");
    ensure!(validate(&mut c, "kmalloc-32")?.errors == 0, "not repaired");
    ok("kfree", c.kfree(p))?;
    Ok(())
}

/// `test_krealloc_redzone_zeroing`, through `Krealloc` (the server resizes objects whose
/// requested size only it knows).
pub fn krealloc_redzone_zeroing(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, DEBUG)?;
    let p = ok("kmalloc(48)", c.kmalloc(48))?.handle;
    c.write(p, 0, &[0xff; 48])?;
    // Shrink: the tail is red zone.
    let p = ok("krealloc to 40", c.krealloc(p, 40, true))?.handle;
    ensure!(c.read(p, 40, 24)?.iter().all(|&b| b == RED_ACTIVE), "shrunk tail {:02x?}", c.read(p, 40, 24)?);
    // Grow within the 64-byte object: the new bytes zero, the rest red zone.
    let p = ok("krealloc to 56", c.krealloc(p, 56, true))?.handle;
    ensure!(c.read(p, 40, 16)?.iter().all(|&b| b == 0), "grown bytes {:02x?}", c.read(p, 40, 16)?);
    ensure!(c.read(p, 56, 8)?.iter().all(|&b| b == RED_ACTIVE), "tail {:02x?}", c.read(p, 56, 8)?);
    ensure!(validate(&mut c, "kmalloc-64")?.errors == 0, "validation found errors");
    // Grow past the object: a new 128-byte object with the old bytes and zero after them.
    c.write(p, 0, &[0xff; 56])?;
    let q = ok("krealloc to 112", c.krealloc(p, 112, true))?.handle;
    ensure!(q != p, "grew in place past the object");
    ensure!(c.read(q, 0, 56)?.iter().all(|&b| b == 0xff), "copied bytes {:02x?}", c.read(q, 0, 56)?);
    ensure!(c.read(q, 56, 56)?.iter().all(|&b| b == 0), "new bytes {:02x?}", c.read(q, 56, 56)?);
    err("the old object was freed", c.kfree(p), Error::DoubleFree)?;
    ok("kfree", c.kfree(q))?;
    Ok(())
}
