/*
 * The C API's rules, one per command-line argument: `linux_api RULE` exits 0 when RULE holds
 * (and prints why not otherwise). Driven by integration/tests/c_api.rs, one test per rule,
 * each against its own server; only memclient.h and the C library are used.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memclient.h"

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: %s failed (last error %d: %s)\n", __FILE__, __LINE__, #cond, \
                    memclient_last_error(), memclient_last_error_message());                     \
            return 1;                                                                            \
        }                                                                                        \
    } while (0)

#define EINVAL_ 22
#define EFAULT_ 14
#define ENOTCONN_ 107
#define EISCONN_ 106
#define EOVERFLOW_ 75

static int all_bytes(const void *p, unsigned char value, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != value) {
            return 0;
        }
    }
    return 1;
}

static int kmalloc_zero_is_zero_size_ptr(void) {
    void *p = kmalloc(0, GFP_KERNEL);
    CHECK(p == ZERO_SIZE_PTR);
    CHECK(ZERO_OR_NULL_PTR(p));
    CHECK(ksize(p) == 0);
    kfree(p);
    kfree(NULL);
    void *q = krealloc(ZERO_SIZE_PTR, 10, GFP_KERNEL);
    CHECK(q != NULL && !ZERO_OR_NULL_PTR(q));
    CHECK(krealloc(q, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
    CHECK(kzalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR);
    return 0;
}

static int kmalloc_power_of_two_sizes_are_naturally_aligned(void) {
    /* Up to a page: larger powers of two are the kmalloc issue's (whole pages aligned). */
    for (size_t size = 8; size <= 4096; size *= 2) {
        void *held[16];
        for (int i = 0; i < 16; i++) {
            held[i] = kmalloc(size, GFP_KERNEL);
            CHECK(held[i] != NULL);
            CHECK(((uintptr_t)held[i] & (size - 1)) == 0);
        }
        for (int i = 0; i < 16; i++) {
            kfree(held[i]);
        }
    }
    return 0;
}

static int ksize_and_roundup_give_the_size_class(void) {
    CHECK(kmalloc_size_roundup(54) == 64);
    CHECK(kmalloc_size_roundup(65) == 96);
    CHECK(kmalloc_size_roundup(10000) == 12288);
    size_t sizes[] = {1, 54, 100, 129, 3000, 8192, 10000, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = kmalloc(sizes[i], GFP_KERNEL);
        CHECK(p != NULL);
        size_t usable = ksize(p);
        CHECK(usable == kmalloc_size_roundup(sizes[i]));
        memset(p, 0x5a, usable); /* all of ksize() is the caller's */
        kfree(p);
    }
    int on_stack = 0;
    CHECK(ksize(&on_stack) == 0 && memclient_last_error() == EINVAL_);
    return 0;
}

static int krealloc_keeps_contents_and_pointer_while_it_fits(void) {
    unsigned char *p = kmalloc(20, GFP_KERNEL);
    CHECK(p != NULL);
    memset(p, 0x11, 20);
    CHECK(krealloc(p, 30, GFP_KERNEL) == p); /* kmalloc-32 */
    unsigned char *q = krealloc(p, 100, GFP_KERNEL);
    CHECK(q != NULL && q != p);
    CHECK(all_bytes(q, 0x11, 20));
    CHECK(ksize(q) == 128);
    kfree(q);

    /* With __GFP_ZERO, whatever grows is zero, in place or moved. */
    unsigned char *z = kzalloc(20, GFP_KERNEL);
    CHECK(z != NULL);
    memset(z, 0x22, 20);
    z = krealloc(z, 10, GFP_KERNEL | __GFP_ZERO);
    CHECK(z != NULL && all_bytes(z, 0x22, 10) && all_bytes(z + 10, 0, 22));
    unsigned char *big = krealloc(z, 500, GFP_KERNEL | __GFP_ZERO);
    CHECK(big != NULL && all_bytes(big, 0x22, 10) && all_bytes(big + 10, 0, 490));
    kfree(big);
    return 0;
}

static int kcalloc_checks_overflow_and_zeroes(void) {
    CHECK(kcalloc(SIZE_MAX / 2, 4, GFP_KERNEL) == NULL);
    CHECK(memclient_last_error() == EOVERFLOW_);
    CHECK(kmalloc_array(SIZE_MAX / 8 + 1, 16, GFP_KERNEL) == NULL);
    /* A reused object comes back zeroed. */
    unsigned char *dirty = kmalloc(1000, GFP_KERNEL);
    CHECK(dirty != NULL);
    memset(dirty, 0xff, 1000);
    kfree(dirty);
    unsigned char *clean = kcalloc(10, 100, GFP_KERNEL);
    CHECK(clean != NULL && all_bytes(clean, 0, 1024));
    kfree(clean);
    return 0;
}

struct blob {
    unsigned char bytes[100];
};

static int kmem_cache_zalloc_and_gfp_zero_zero_objects(void) {
    struct kmem_cache *cache = KMEM_CACHE(blob, 0);
    CHECK(cache != NULL);
    CHECK(kmem_cache_size(cache) == sizeof(struct blob));
    for (int round = 0; round < 3; round++) {
        struct blob *b = kmem_cache_alloc(cache, GFP_KERNEL);
        CHECK(b != NULL);
        memset(b, 0xab, sizeof *b);
        kmem_cache_free(cache, b);
        b = round == 0 ? kmem_cache_zalloc(cache, GFP_KERNEL) : kmem_cache_alloc(cache, GFP_ATOMIC | __GFP_ZERO);
        CHECK(b != NULL && all_bytes(b, 0, sizeof *b));
        kmem_cache_free(cache, b);
    }
    kmem_cache_destroy(cache);
    return 0;
}

static unsigned long constructed;

static void stamp(void *object) {
    uint64_t *words = object;
    words[0] = 0x5ca1ab1e;
    words[1] = ++constructed;
}

static int ctor_runs_once_per_object(void) {
    struct kmem_cache *cache = kmem_cache_create("stamped", 64, 0, 0, stamp);
    CHECK(cache != NULL);
    uint64_t *held[200];
    for (int i = 0; i < 200; i++) {
        held[i] = kmem_cache_alloc(cache, GFP_KERNEL);
        CHECK(held[i] != NULL && held[i][0] == 0x5ca1ab1e);
        held[i][2] = (uint64_t)i; /* the user's own state survives, as Linux's rule says */
    }
    unsigned long after_first = constructed;
    CHECK(after_first >= 200);
    for (int i = 0; i < 200; i++) {
        kmem_cache_free(cache, held[i]);
    }
    for (int i = 0; i < 200; i++) {
        held[i] = kmem_cache_alloc(cache, GFP_KERNEL);
        CHECK(held[i] != NULL && held[i][0] == 0x5ca1ab1e);
    }
    CHECK(constructed == after_first); /* never again on reuse */
    CHECK(kmem_cache_zalloc(cache, GFP_KERNEL) == NULL && memclient_last_error() == EINVAL_);
    for (int i = 0; i < 200; i++) {
        kmem_cache_free(cache, held[i]);
    }
    kmem_cache_destroy(cache);
    return 0;
}

static int destroy_with_live_objects_warns_and_keeps_the_cache(void) {
    struct kmem_cache *cache = kmem_cache_create("kept", 48, 0, 0, NULL);
    CHECK(cache != NULL);
    void *a = kmem_cache_alloc(cache, GFP_KERNEL);
    void *b = kmem_cache_alloc(cache, GFP_KERNEL);
    CHECK(a != NULL && b != NULL);
    kmem_cache_destroy(cache); /* refused: warns on stderr */
    CHECK(memclient_last_error() == 16 /* EBUSY */);
    void *c = kmem_cache_alloc(cache, GFP_KERNEL); /* still usable */
    CHECK(c != NULL);
    kmem_cache_free(cache, a);
    kmem_cache_free(cache, b);
    kmem_cache_free(cache, c);
    kmem_cache_destroy(cache);
    /* Destroyed now: its name is free again. */
    struct kmem_cache *again = kmem_cache_create("kept", 48, 0, 0, NULL);
    CHECK(again != NULL);
    kmem_cache_destroy(again);
    struct memclient_stats stats;
    CHECK(memclient_stats(&stats) == 0 && stats.live_objects == 0);
    return 0;
}

static int errors_are_reported_like_errno(void) {
    CHECK(kmem_cache_create("bad-align", 64, 3, 0, NULL) == NULL);
    CHECK(memclient_last_error() == EINVAL_);
    CHECK(strstr(memclient_last_error_message(), "bad-align") != NULL);
    CHECK(kmem_cache_create("a-name-that-is-longer-than-31-bytes", 64, 0, 0, NULL) == NULL);
    CHECK(memclient_last_error() == EINVAL_);
    CHECK(kmem_cache_alloc(NULL, GFP_KERNEL) == NULL && memclient_last_error() == EINVAL_);

    struct kmem_cache *one = kmem_cache_create("one", 64, 0, 0, NULL);
    struct kmem_cache *two = kmem_cache_create("two", 64, 0, SLAB_CONSISTENCY_CHECKS, NULL);
    CHECK(one != NULL && two != NULL);
    void *p = kmem_cache_alloc(one, GFP_KERNEL);
    CHECK(p != NULL);
    kmem_cache_free(two, p); /* the wrong cache: refused, reported */
    CHECK(memclient_last_error() == EINVAL_);
    kmem_cache_free(one, p);
    void *q = kmem_cache_alloc(two, GFP_KERNEL);
    kmem_cache_free(two, q);
    kmem_cache_free(two, q); /* a double free: refused, reported */
    CHECK(memclient_last_error() == EFAULT_);
    void *from_libc = malloc(32);
    kfree(from_libc); /* not this client's memory */
    CHECK(memclient_last_error() == EFAULT_);
    free(from_libc);
    kmem_cache_destroy(one);
    kmem_cache_destroy(two);
    return 0;
}

static int debug_cache_catches_use_after_free(void) {
    struct kmem_cache *cache = kmem_cache_create("poisoned", 64, 0, SLAB_POISON, NULL);
    CHECK(cache != NULL);
    unsigned char *p = kmem_cache_alloc(cache, GFP_KERNEL);
    CHECK(p != NULL);
    kmem_cache_free(cache, p);
    p[10] = 0x42; /* use after free */
    void *next = kmem_cache_alloc(cache, GFP_KERNEL);
    CHECK(next == NULL && memclient_last_error() == EFAULT_);
    CHECK(strstr(memclient_last_error_message(), "oison") != NULL);
    return 0;
}

static int explicit_connect(const char *socket) {
    /* Started without MEMSERVER_SOCKET: the automatic connection fails, calls return NULL. */
    CHECK(kmalloc(8, GFP_KERNEL) == NULL && memclient_last_error() == ENOTCONN_);
    CHECK(memclient_connect("/nonexistent/memserver.sock", "app") < 0);
    CHECK(memclient_connect(socket, "app") == 0);
    void *p = kmalloc(8, GFP_KERNEL);
    CHECK(p != NULL);
    kfree(p);
    CHECK(memclient_connect(socket, "app") == -EISCONN_);
    return 0;
}

struct item {
    uint64_t owner;
    uint64_t serial;
    unsigned char pad[48];
};

static struct kmem_cache *shared_cache;

static void *worker(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    struct item *held[64];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++) {
            held[i] = kmem_cache_alloc(shared_cache, GFP_KERNEL);
            if (held[i] == NULL) {
                return (void *)1;
            }
            held[i]->owner = id;
            held[i]->serial = (uint64_t)i;
        }
        unsigned char *buf = kmalloc(200 + id, GFP_KERNEL);
        if (buf == NULL) {
            return (void *)1;
        }
        memset(buf, (int)id, 200 + id);
        for (int i = 0; i < 64; i++) {
            if (held[i]->owner != id || held[i]->serial != (uint64_t)i) {
                return (void *)1; /* another thread got the same object */
            }
            kmem_cache_free(shared_cache, held[i]);
        }
        if (!all_bytes(buf, (unsigned char)id, 200 + id)) {
            return (void *)1;
        }
        kfree(buf);
    }
    return NULL;
}

static int threads_share_caches(void) {
    shared_cache = KMEM_CACHE(item, SLAB_HWCACHE_ALIGN);
    CHECK(shared_cache != NULL);
    pthread_t threads[4];
    for (uintptr_t t = 0; t < 4; t++) {
        CHECK(pthread_create(&threads[t], NULL, worker, (void *)(t + 1)) == 0);
    }
    for (int t = 0; t < 4; t++) {
        void *result;
        CHECK(pthread_join(threads[t], &result) == 0 && result == NULL);
    }
    kmem_cache_destroy(shared_cache);
    /* The kfreed buffers may sit in the kmalloc caches' magazines: nothing else is live. */
    struct memclient_stats stats;
    CHECK(memclient_stats(&stats) == 0 && stats.live_objects == stats.magazine_objects);
    return 0;
}

static int kmem_cache_shrink_reports_whether_slabs_remain(void) {
    struct kmem_cache *cache = kmem_cache_create("shrinkable", 256, 0, 0, NULL);
    CHECK(cache != NULL);
    void *p = kmem_cache_alloc(cache, GFP_KERNEL);
    CHECK(p != NULL);
    CHECK(kmem_cache_shrink(cache) == 1);
    kmem_cache_free(cache, p);
    CHECK(kmem_cache_shrink(cache) == 0);
    kmem_cache_destroy(cache);
    return 0;
}

static int bulk_alloc_is_all_or_nothing(void) {
    struct kmem_cache *cache = kmem_cache_create("bulk", 64, 0, 0, NULL);
    CHECK(cache != NULL);
    void *objects[300];
    CHECK(kmem_cache_alloc_bulk(cache, GFP_KERNEL | __GFP_ZERO, 300, objects) == 300);
    for (int i = 0; i < 300; i++) {
        CHECK(objects[i] != NULL && all_bytes(objects[i], 0, 64));
        for (int j = 0; j < i; j++) {
            CHECK(objects[j] != objects[i]);
        }
        memset(objects[i], 0x5a, 64);
    }
    kmem_cache_free_bulk(cache, 300, objects);
    CHECK(kmem_cache_alloc_bulk(cache, GFP_KERNEL, 0, objects) == 0);
    /* With a NULL cache, each object goes back to its own cache (kmalloc objects too). */
    objects[0] = kmalloc(40, GFP_KERNEL);
    objects[1] = kmem_cache_alloc(cache, GFP_KERNEL);
    objects[2] = NULL;
    CHECK(objects[0] != NULL && objects[1] != NULL);
    kmem_cache_free_bulk(NULL, 3, objects);
    struct kmem_cache *stamped = kmem_cache_create("bulk-ctor", 64, 0, 0, stamp);
    CHECK(stamped != NULL);
    CHECK(kmem_cache_alloc_bulk(stamped, GFP_KERNEL | __GFP_ZERO, 4, objects) == 0);
    CHECK(memclient_last_error() == EINVAL_);
    CHECK(kmem_cache_alloc_bulk(stamped, GFP_KERNEL, 4, objects) == 4);
    for (int i = 0; i < 4; i++) {
        CHECK(((uint64_t *)objects[i])[0] == 0x5ca1ab1e);
    }
    kmem_cache_free_bulk(stamped, 4, objects);
    kmem_cache_destroy(stamped);
    kmem_cache_destroy(cache);
    struct memclient_stats stats;
    CHECK(memclient_stats(&stats) == 0 && stats.live_objects == stats.magazine_objects);
    return 0;
}

static int slab_panic_aborts_when_creation_fails(void) {
    kmem_cache_create("panics", 64, 3, SLAB_PANIC, NULL);
    return 1; /* not reached: the process aborts */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: linux_api RULE [SOCKET]\n");
        return 2;
    }
    const char *rule = argv[1];
#define RULE(name)                \
    if (strcmp(rule, #name) == 0) \
        return name();
    RULE(kmalloc_zero_is_zero_size_ptr)
    RULE(kmalloc_power_of_two_sizes_are_naturally_aligned)
    RULE(ksize_and_roundup_give_the_size_class)
    RULE(krealloc_keeps_contents_and_pointer_while_it_fits)
    RULE(kcalloc_checks_overflow_and_zeroes)
    RULE(kmem_cache_zalloc_and_gfp_zero_zero_objects)
    RULE(ctor_runs_once_per_object)
    RULE(destroy_with_live_objects_warns_and_keeps_the_cache)
    RULE(errors_are_reported_like_errno)
    RULE(debug_cache_catches_use_after_free)
    RULE(threads_share_caches)
    RULE(kmem_cache_shrink_reports_whether_slabs_remain)
    RULE(bulk_alloc_is_all_or_nothing)
    RULE(slab_panic_aborts_when_creation_fails)
    if (strcmp(rule, "explicit_connect") == 0 && argc == 3) {
        return explicit_connect(argv[2]);
    }
    fprintf(stderr, "linux_api: unknown rule %s\n", rule);
    return 2;
}
