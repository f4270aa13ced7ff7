//! The Rust allocator traits on caches (allocator-api2 `Allocator`) and the owned handles
//! (`KBox`, `CtorCache`), against the real server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memclient::allocator_api2::alloc::{Allocator, Layout};
use memclient::allocator_api2::boxed::Box as ApiBox;
use memclient::allocator_api2::vec::Vec as ApiVec;
use memclient::host::{Connection, connect};
use memclient::{Cache, CtorCache, Error, KmemCache, Memserver};

use common::one_app_system as system;

fn session(server: &common::Server) -> Memserver<Connection> {
    connect(&server.socket(), "app").unwrap()
}

/// Objects of `cache` the client holds outside its magazines: what stays allocated once the
/// magazines (this thread's, exited threads', the shared ones) went back to the server.
fn held(ms: &Memserver<Connection>, cache: &Cache<'_, Connection>) -> u32 {
    cache.flush().unwrap();
    let info = ms.cache_info(cache.id()).unwrap();
    info.active_objs - info.magazine_objs
}

#[repr(C, align(32))]
#[derive(Debug, PartialEq)]
struct Node {
    key: u64,
    value: [u32; 10],
}

#[test]
fn box_and_vec_allocate_from_a_cache() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let nodes = KmemCache::<Node, _>::new(&ms, "node", 0, None).unwrap();
    let boxes: Vec<ApiBox<Node, &KmemCache<'_, Node, Connection>>> =
        (0..100).map(|i| ApiBox::new_in(Node { key: i, value: [i as u32; 10] }, &nodes)).collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.key, i as u64);
        assert_eq!((&raw const **b).addr() % 32, 0);
        let handle = ms.window().handle(std::ptr::NonNull::from(&**b).cast());
        assert!(handle.is_some(), "a boxed node outside the window");
    }
    assert_eq!(held(&ms, nodes.cache()), 100);
    drop(boxes);
    assert_eq!(held(&ms, nodes.cache()), 0);

    // A byte vector in a 256-byte cache: it grows in place up to the object size.
    let buffers = Cache::create(&ms, "buffer-256", 256, 0, 0, None).unwrap();
    let mut v: ApiVec<u8, &Cache<'_, Connection>> = ApiVec::new_in(&buffers);
    v.extend_from_slice(&[1; 100]);
    let first = v.as_ptr();
    v.extend_from_slice(&[2; 150]);
    assert_eq!(v.as_ptr(), first, "grew out of its object");
    assert_eq!((v.len(), v[99], v[249]), (250, 1, 2));
    assert_eq!(held(&ms, &buffers), 1);
    drop(v);
    assert_eq!(held(&ms, &buffers), 0);
}

#[test]
fn requests_that_do_not_fit_the_cache_are_alloc_errors() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let cache = Cache::create(&ms, "small", 64, 8, 0, None).unwrap();
    let align = cache.layout().align as usize;
    assert!(cache.allocate(Layout::from_size_align(65, 8).unwrap()).is_err(), "larger than the object");
    assert!(cache.allocate(Layout::from_size_align(8, align * 2).unwrap()).is_err(), "more aligned than the cache");
    let mut v: ApiVec<u8, &Cache<'_, Connection>> = ApiVec::new_in(&cache);
    assert!(v.try_reserve(64).is_ok());
    assert!(v.try_reserve(65).is_err(), "a vector outgrew its object");
    // Size 0 never touches the cache.
    let empty = cache.allocate(Layout::from_size_align(0, 16).unwrap()).unwrap();
    assert_eq!(empty.len(), 0);
    drop(v);
    assert_eq!(held(&ms, &cache), 0);
}

fn stamp(object: std::ptr::NonNull<u8>) {
    // SAFETY: the caches below have 64-byte objects.
    unsafe { object.as_ptr().write_bytes(0x77, 64) };
}

#[test]
fn ctor_caches_refuse_the_allocator_trait_and_new_object() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let cache = KmemCache::<[u8; 64], _>::new(&ms, "stamped", 0, Some(stamp)).unwrap();
    assert!(cache.allocate(Layout::new::<[u8; 64]>()).is_err());
    assert!(matches!(cache.new_object([0; 64]), Err(Error::Server(protocol::Error::InvalidArgument))));
    assert_eq!(held(&ms, cache.cache()), 0);
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

#[test]
fn kbox_drops_its_value_and_frees_its_object() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let cache = KmemCache::<Tracked, _>::new(&ms, "tracked", 0, None).unwrap();
    let before = DROPPED.load(SeqCst);
    {
        let mut boxes: Vec<_> = (0..50).map(|i| cache.new_object(Tracked(i)).unwrap()).collect();
        boxes[7].0 += 100;
        assert_eq!(boxes.iter().map(|b| b.0).sum::<u64>(), (0..50).sum::<u64>() + 100);
        assert_eq!(held(&ms, cache.cache()), 50);
    }
    assert_eq!(DROPPED.load(SeqCst) - before, 50);
    assert_eq!(held(&ms, cache.cache()), 0);
    // No box alive: the cache can go.
    assert!(cache.destroy().is_ok());
}

#[test]
fn kbox_moves_between_threads() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let cache = KmemCache::<[u64; 4], _>::new(&ms, "sent", 0, None).unwrap();
    std::thread::scope(|scope| {
        let b = cache.new_object([1, 2, 3, 4]).unwrap();
        let sum = scope.spawn(move || b.iter().sum::<u64>()).join().unwrap();
        assert_eq!(sum, 10);
    });
    assert_eq!(held(&ms, cache.cache()), 0);
}

#[derive(Default)]
struct Peer {
    opened: u64,
    bytes: [u8; 32],
}

#[test]
fn ctor_cache_objects_keep_their_state_across_reuse_and_are_never_dropped() {
    let server = common::Server::start(&system());
    let ms = session(&server);
    let cache = CtorCache::<Peer, _>::new(&ms, "conn", 0).unwrap();
    let first: Vec<_> = (0..10).map(|_| cache.alloc().unwrap()).collect();
    assert!(first.iter().all(|c| c.opened == 0 && c.bytes == [0; 32]), "fresh objects are X::default()");
    let addresses: Vec<_> = first.iter().map(memclient::KBox::as_ptr).collect();
    for mut c in first {
        c.opened += 1;
        c.bytes[0] = 9;
    }
    // The same objects come back (magazine LIFO), in the state their last box left.
    let again: Vec<_> = (0..10).map(|_| cache.alloc().unwrap()).collect();
    for c in &again {
        assert!(addresses.contains(&memclient::KBox::as_ptr(c)));
        assert_eq!((c.opened, c.bytes[0]), (1, 9));
    }
    drop(again);
    assert_eq!(held(&ms, cache.cache().cache()), 0);
    assert!(cache.destroy().is_ok());
}
