//! C constructors. The client library's ctor is a plain Rust `fn(NonNull<u8>)` (it runs in
//! the library, once per fresh object), with no room for a C function pointer. So each cache
//! created with a C ctor takes one of [`CTOR_SLOTS`] slots: the slot holds the C function, and
//! a Rust trampoline made for that slot calls it. A slot is given back when its cache is
//! destroyed; with every slot taken, `kmem_cache_create()` with a ctor fails (`ENOSPC`).

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use memclient::Ctor;

/// A C constructor: Linux's `void (*ctor)(void *)`.
pub type CCtor = unsafe extern "C" fn(*mut c_void);

/// Caches with a C ctor that may exist at once (a client has at most
/// `max_caches_per_client` caches, 32 by default, 13 of them kmalloc's).
pub const CTOR_SLOTS: usize = 64;

/// The C ctor of each slot (null: free).
static CTORS: [AtomicPtr<()>; CTOR_SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; CTOR_SLOTS];

/// Calls the C ctor of slot `SLOT` on `object`.
fn trampoline<const SLOT: usize>(object: NonNull<u8>) {
    let Some(slot) = CTORS.get(SLOT) else { return };
    let f = slot.load(Ordering::Acquire);
    if f.is_null() {
        return;
    }
    // SAFETY: a non-null slot holds a `CCtor` stored by `claim` (a function pointer cast to a
    // data pointer, which round-trips on every platform this crate builds for).
    let ctor = unsafe { core::mem::transmute::<*mut (), CCtor>(f) };
    // SAFETY: the C caller of kmem_cache_create() promised a ctor that takes any object of
    // its cache; `object` is a fresh object of that cache, not yet handed out.
    unsafe { ctor(object.as_ptr().cast()) };
}

macro_rules! trampolines {
    ($($slot:literal)*) => { [$(trampoline::<$slot> as Ctor),*] };
}

/// One trampoline per slot.
static TRAMPOLINES: [Ctor; CTOR_SLOTS] = trampolines!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
);

/// A claimed slot: the Rust ctor to give the cache, and the slot to release with it.
#[derive(Debug)]
pub struct CtorSlot {
    index: usize,
}

impl CtorSlot {
    /// Takes a free slot for `ctor`; `None` if every slot is taken.
    pub fn claim(ctor: CCtor) -> Option<CtorSlot> {
        let f = ctor as *mut ();
        CTORS
            .iter()
            .position(|slot| slot.compare_exchange(ptr::null_mut(), f, Ordering::AcqRel, Ordering::Acquire).is_ok())
            .map(|index| CtorSlot { index })
    }

    /// The trampoline that calls this slot's C ctor.
    pub fn rust_ctor(&self) -> Option<Ctor> {
        TRAMPOLINES.get(self.index).copied()
    }
}

impl Drop for CtorSlot {
    fn drop(&mut self) {
        if let Some(slot) = CTORS.get(self.index) {
            slot.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// The slots are process-wide: these tests take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    unsafe extern "C" fn count(object: *mut c_void) {
        // SAFETY: the test passes a pointer to a u64.
        unsafe { object.cast::<u64>().write(0xc0ffee) };
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_claimed_slot_calls_its_c_ctor_and_is_free_again_after_drop() {
        let _turn = SERIAL.lock().unwrap();
        let slot = CtorSlot::claim(count).unwrap();
        let mut object = 0u64;
        let before = CALLS.load(Ordering::SeqCst);
        (slot.rust_ctor().unwrap())(NonNull::from(&mut object).cast());
        assert_eq!((object, CALLS.load(Ordering::SeqCst)), (0xc0ffee, before + 1));
        let index = slot.index;
        drop(slot);
        assert!(CTORS[index].load(Ordering::SeqCst).is_null());
    }

    #[test]
    fn slots_run_out_and_come_back() {
        let _turn = SERIAL.lock().unwrap();
        let held: Vec<CtorSlot> = std::iter::from_fn(|| CtorSlot::claim(count)).collect();
        assert_eq!(held.len(), CTOR_SLOTS);
        assert!(CtorSlot::claim(count).is_none());
        drop(held);
        assert!(CtorSlot::claim(count).is_some());
    }
}
