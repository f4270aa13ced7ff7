//! `dma_object`: which handles the engine passes on to the platform for a physical address.

mod common;
use common::*;
use protocol::flags::SLAB_CACHE_DMA;
use protocol::{Error, Handle, PAGE_SIZE};

#[test]
fn an_allocated_object_of_a_dma_cache_is_its_offset_and_size() {
    let mut e = engine();
    let cache = e.cache_create(0, "dma", 192, 0, SLAB_CACHE_DMA, false).unwrap();
    let object = e.cache_alloc(0, cache).unwrap().handle;
    assert_eq!(e.dma_object(0, object), Ok((object.0, 192)));
}

#[test]
fn an_object_of_another_cache_kind_is_invalid_argument() {
    let mut e = engine();
    let plain = e.cache_create(0, "plain", 192, 0, 0, false).unwrap();
    let object = e.cache_alloc(0, plain).unwrap().handle;
    assert_eq!(e.dma_object(0, object), Err(Error::InvalidArgument));
    let large = e.kmalloc(0, 3 * PAGE_SIZE as u32).unwrap();
    assert_eq!(e.dma_object(0, large), Err(Error::InvalidArgument));
}

#[test]
fn a_freed_foreign_or_inner_handle_is_invalid_object() {
    let mut e = engine();
    let cache = e.cache_create(0, "dma", 192, 0, SLAB_CACHE_DMA, false).unwrap();
    let kept = e.cache_alloc(0, cache).unwrap().handle;
    let freed = e.cache_alloc(0, cache).unwrap().handle;
    e.cache_free(0, cache, freed).unwrap();
    assert_eq!(e.dma_object(0, freed), Err(Error::InvalidObject));
    assert_eq!(e.dma_object(1, kept), Err(Error::InvalidObject), "another client's handle");
    assert_eq!(e.dma_object(0, Handle(kept.0 + 8)), Err(Error::InvalidObject), "inside an object");
}
