//! Attacks on the client library's own fast path (issue 11, Linux's
//! `CONFIG_SLAB_FREELIST_HARDENED` as the anchor): a program using `memclient` frees what it
//! must not, and the library has to refuse without asking the server, before a bad pointer
//! reaches a magazine and comes back out of an allocation. Each attack ends by allocating
//! from the cache: no object is handed out twice, and no non-object is handed out at all.

use std::collections::HashSet;
use std::ptr::NonNull;

use memclient::host::{Connection, connect};
use memclient::{Cache, Error as ClientError, Memserver};
use protocol::Error;

use crate::peer::Failure;
use crate::world::World;

fn session(w: &World, name: &str) -> Result<Memserver<Connection>, Failure> {
    connect(&w.socket(), name).map_err(|e| format!("connect {name}: {e}"))
}

fn create<'m>(s: &'m Memserver<Connection>, name: &str, size: u32) -> Result<Cache<'m, Connection>, Failure> {
    let cache = Cache::create(s, name, size, 0, 0, None).map_err(|e| format!("create {name}: {e:?}"))?;
    if !cache.has_magazines() {
        return Err(format!("{name} has no magazines: the attack would not reach the fast path"));
    }
    Ok(cache)
}

/// `what` must be refused with `expected` (the server's error the library reports).
fn refused(what: &str, result: Result<(), ClientError>, expected: Error) -> Result<(), Failure> {
    match result {
        Err(ClientError::Server(e)) if e == expected => Ok(()),
        other => Err(format!("{what}: {other:?}, expected {expected:?}")),
    }
}

/// Allocates `n` objects from `cache`: all distinct and none of `forbidden`; frees them.
fn no_object_twice(
    cache: &Cache<'_, Connection>,
    n: usize,
    forbidden: &[NonNull<u8>],
    what: &str,
) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..n {
        let p = cache.alloc().map_err(|e| format!("alloc: {e:?}"))?;
        if !seen.insert(p) {
            return Err(format!("{what}: {p:p} handed out twice"));
        }
        if forbidden.contains(&p) {
            return Err(format!("{what}: {p:p} handed out, but it is no free object of this cache"));
        }
        held.push(p);
    }
    held.into_iter().try_for_each(|p| cache.free(p).map_err(|e| format!("free: {e:?}")))
}

/// Attack: double frees on the magazine fast path: the same object freed twice in a row,
/// freed again after other frees (not the magazine's top any more), and freed again by
/// another thread (whose magazine is another one). Each second free is `DoubleFree`, and the
/// next allocations hand every object out once.
pub fn fast_path_double_free(w: &mut World) -> Result<(), Failure> {
    let s = session(w, "hostile-1")?;
    let c = create(&s, "a-fast-df", 64)?;
    let alloc = || c.alloc().map_err(|e| format!("alloc: {e:?}"));
    let (a, b) = (alloc()?, alloc()?);
    c.free(a).map_err(|e| format!("first free: {e:?}"))?;
    refused("free twice in a row", c.free(a), Error::DoubleFree)?;
    c.free(b).map_err(|e| format!("free: {e:?}"))?;
    refused("free again under another object", c.free(a), Error::DoubleFree)?;
    let b_addr = b.as_ptr() as usize;
    let elsewhere =
        std::thread::scope(|t| t.spawn(|| c.free(NonNull::new(b_addr as *mut u8).expect("non-null"))).join())
            .map_err(|_| "thread panicked")?;
    refused("free again from another thread", elsewhere, Error::DoubleFree)?;
    no_object_twice(&c, 200, &[], "after the double frees")?;
    println!("    fast_path_double_free: 3 double frees refused (DoubleFree), no object handed out twice");
    Ok(())
}

/// Attack: an object freed to another cache of the same size on the fast path, and a kmalloc
/// object freed with `kmem_cache_free`: `WrongCache`; the object stays its own cache's, and
/// the wrong cache never hands it out.
pub fn fast_path_wrong_cache(w: &mut World) -> Result<(), Failure> {
    let s = session(w, "hostile-1")?;
    let x = create(&s, "a-fast-x", 64)?;
    let y = create(&s, "a-fast-y", 64)?;
    let theirs = x.alloc().map_err(|e| format!("alloc: {e:?}"))?;
    let kmalloced = s.kmalloc(64).map_err(|e| format!("kmalloc: {e:?}"))?;
    refused("free to another cache", y.free(theirs), Error::WrongCache)?;
    refused("kmalloc object to a cache", y.free(kmalloced), Error::WrongCache)?;
    y.lock().free(theirs).map_or(Ok(()), |()| Err("a guard's free took another cache's object".to_string()))?;
    no_object_twice(&y, 200, &[theirs, kmalloced], "the wrong cache")?;
    x.free(theirs).map_err(|e| format!("the right cache refused its object: {e:?}"))?;
    s.kfree(kmalloced).map_err(|e| format!("kfree: {e:?}"))?;
    println!("    fast_path_wrong_cache: another cache's and a kmalloc object refused (WrongCache)");
    Ok(())
}

/// Attack: pointers into the middle of objects freed on the fast path: `object + 8`, the last
/// byte's word, and a pointer between objects of a cache whose stride is not a power of two.
/// Each is `InvalidObject`, and none is ever handed out as an object.
pub fn fast_path_interior_pointer(w: &mut World) -> Result<(), Failure> {
    let s = session(w, "hostile-1")?;
    let c = create(&s, "a-fast-mid", 64)?;
    let odd = create(&s, "a-fast-odd", 40)?;
    let obj = c.alloc().map_err(|e| format!("alloc: {e:?}"))?;
    let o = odd.alloc().map_err(|e| format!("alloc: {e:?}"))?;
    let inside = |p: NonNull<u8>, by: usize| NonNull::new(p.as_ptr().wrapping_add(by)).ok_or("null".to_string());
    let bad = [inside(obj, 8)?, inside(obj, 56)?, inside(o, 16)?, inside(o, 32)?];
    refused("object + 8", c.free(bad[0]), Error::InvalidObject)?;
    refused("object + 56", c.free(bad[1]), Error::InvalidObject)?;
    refused("40-byte object + 16", odd.free(bad[2]), Error::InvalidObject)?;
    refused("40-byte object + 32", odd.free(bad[3]), Error::InvalidObject)?;
    no_object_twice(&c, 200, &bad, "after object + 8")?;
    no_object_twice(&odd, 200, &bad, "after a pointer inside a 40-byte object")?;
    c.free(obj).map_err(|e| format!("free: {e:?}"))?;
    odd.free(o).map_err(|e| format!("free: {e:?}"))?;
    println!("    fast_path_interior_pointer: 4 pointers inside objects refused (InvalidObject)");
    Ok(())
}

/// Attack: `kfree` twice, and `kfree` of an object the program already gave back with
/// `kmem_cache_free`: both reach the same magazines through the page-owner table and are
/// `DoubleFree`; the next kmallocs hand every object out once.
pub fn kfree_double_free(w: &mut World) -> Result<(), Failure> {
    let s = session(w, "hostile-1")?;
    let p = s.kmalloc(100).map_err(|e| format!("kmalloc: {e:?}"))?;
    s.kfree(p).map_err(|e| format!("kfree: {e:?}"))?;
    refused("kfree twice", s.kfree(p), Error::DoubleFree)?;
    let c = create(&s, "a-fast-kfree", 48)?;
    let obj = c.alloc().map_err(|e| format!("alloc: {e:?}"))?;
    c.free(obj).map_err(|e| format!("free: {e:?}"))?;
    refused("kfree after kmem_cache_free", s.kfree(obj), Error::DoubleFree)?;
    let mut seen = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..100 {
        let q = s.kmalloc(100).map_err(|e| format!("kmalloc: {e:?}"))?;
        if !seen.insert(q) {
            return Err(format!("kmalloc handed {q:p} out twice"));
        }
        held.push(q);
    }
    held.into_iter().try_for_each(|q| s.kfree(q).map_err(|e| format!("kfree: {e:?}")))?;
    no_object_twice(&c, 100, &[], "after kfree of a freed cache object")?;
    println!("    kfree_double_free: kfree twice and kfree after kmem_cache_free refused (DoubleFree)");
    Ok(())
}
