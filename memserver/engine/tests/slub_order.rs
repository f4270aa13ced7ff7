//! Slab geometry next to Linux SLUB's `calculate_order()` (max order 3 = PAGE_ALLOC_COSTLY_ORDER,
//! min order 0, minimum objects as for 2 CPUs: 4 * (fls(2) + 1) = 12). Both the current
//! kernel's algorithm (v6.8+: `calc_slab_order` with a min_objects-derived min order, waste
//! fraction 16 → 8 → 4 → 2) and the older one (v4–v6.7: `slab_order` looping min_objects down
//! to 1) are reimplemented. Fails if our used fraction is lower than SLUB's anywhere.
//! Run with `--nocapture` to see the table.

mod common;
use common::*;

const PAGE: u32 = 4096;
const MAX_ORDER: u32 = 3;
const MAX_OBJS_PER_PAGE: u32 = 32767;
const MIN_OBJECTS: u32 = 4 * (2 + 1); // fls(nr_cpus = 2) = 2

fn get_order(size: u32) -> u32 {
    (0..).find(|&o| PAGE << o >= size).unwrap()
}

fn order_objects(order: u32, size: u32) -> u32 {
    (PAGE << order) / size
}

/// mm/slub.c (v6.8+) `calc_slab_order()`.
fn calc_slab_order(size: u32, min_order: u32, max_order: u32, fract: u32) -> u32 {
    let mut order = min_order;
    while order <= max_order {
        let slab = PAGE << order;
        if slab % size <= slab / fract {
            break;
        }
        order += 1;
    }
    order
}

/// mm/slub.c (v6.8+) `calculate_order()`.
fn slub_order_new(size: u32) -> u32 {
    let max_objects = order_objects(MAX_ORDER, size).max(1);
    let min_objects = MIN_OBJECTS.min(max_objects);
    let min_order = get_order(min_objects * size);
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE {
        return get_order(size * MAX_OBJS_PER_PAGE) - 1;
    }
    let mut fraction = 16;
    while fraction > 1 {
        let order = calc_slab_order(size, min_order, MAX_ORDER, fraction);
        if order <= MAX_ORDER {
            return order;
        }
        fraction /= 2;
    }
    get_order(size)
}

/// mm/slub.c (v4 – v6.7) `slab_order()`.
fn slab_order_old(size: u32, min_objects: u32, max_order: u32, fract: u32) -> u32 {
    if order_objects(0, size) > MAX_OBJS_PER_PAGE {
        return get_order(size * MAX_OBJS_PER_PAGE) - 1;
    }
    let mut order = get_order(min_objects * size);
    while order <= max_order {
        let slab = PAGE << order;
        if slab % size <= slab / fract {
            break;
        }
        order += 1;
    }
    order
}

/// mm/slub.c (v4 – v6.7) `calculate_order()`.
fn slub_order_old(size: u32) -> u32 {
    let mut min_objects = MIN_OBJECTS.min(order_objects(MAX_ORDER, size));
    while min_objects > 1 {
        let mut fraction = 16;
        while fraction >= 4 {
            let order = slab_order_old(size, min_objects, MAX_ORDER, fraction);
            if order <= MAX_ORDER {
                return order;
            }
            fraction /= 2;
        }
        min_objects -= 1;
    }
    let order = slab_order_old(size, 1, MAX_ORDER, 1);
    if order <= MAX_ORDER {
        return order;
    }
    slab_order_old(size, 1, 10, 1)
}

#[test]
fn slab_geometry_at_least_as_dense_as_slub() {
    let mut e = engine_with(64, &[(64, 64)]);
    let mut sizes: Vec<u32> = (3..=13).map(|s| 1 << s).collect();
    sizes.extend([54, 100, 200, 3000]);
    println!(
        "{:>6} {:>6} | {:>5} {:>5} {:>7} | {:>5} {:>5} {:>7} | {:>5} {:>5} {:>7}",
        "size", "stride", "objs", "pages", "used", "slub", "pages", "used", "old", "pages", "used"
    );
    let mut worse = vec![];
    for size in sizes {
        let id = e.cache_create(0, "cmp", size, 0, 0, false).unwrap();
        let i = e.cache_info(0, id).unwrap();
        e.cache_destroy(0, id).unwrap();
        let stride = i.stride; // SLUB's s->size: ALIGN(size, 8) as well
        let ours = (i.objects_per_slab, i.pages_per_slab);
        let new = slub_order_new(stride);
        let old = slub_order_old(stride);
        let slub = (order_objects(new, stride), 1u32 << new);
        let slub_old = (order_objects(old, stride), 1u32 << old);
        let used = |(objs, pages): (u32, u32)| f64::from(objs * size) / f64::from(pages * PAGE);
        println!(
            "{size:>6} {stride:>6} | {:>5} {:>5} {:>6.2}% | {:>5} {:>5} {:>6.2}% | {:>5} {:>5} {:>6.2}%",
            ours.0,
            ours.1,
            100.0 * used(ours),
            slub.0,
            slub.1,
            100.0 * used(slub),
            slub_old.0,
            slub_old.1,
            100.0 * used(slub_old)
        );
        for theirs in [slub, slub_old] {
            // ours.objs / ours.pages >= theirs.objs / theirs.pages, exactly.
            if u64::from(ours.0) * u64::from(theirs.1) < u64::from(theirs.0) * u64::from(ours.1) {
                worse.push(size);
            }
        }
    }
    assert!(worse.is_empty(), "used fraction below SLUB's for sizes {worse:?}");
}

#[test]
fn slub_reimplementation_matches_known_kernel_orders() {
    // Orders SLUB reports in /proc/slabinfo on 2-CPU x86-64 machines (pagesperslab column).
    assert_eq!(1 << slub_order_new(8), 1);
    assert_eq!(1 << slub_order_new(512), 2);
    assert_eq!(1 << slub_order_new(1024), 4);
    assert_eq!(1 << slub_order_new(2048), 8);
    assert_eq!(1 << slub_order_new(4096), 8);
    assert_eq!(1 << slub_order_new(8192), 8);
    assert_eq!(1 << slub_order_old(1024), 4);
}
