/*
 * The kmem_cache example of the reference document (a hash table of toa_ipv6 nodes, from a
 * TOA kernel module), in plain C on memclient: the same KMEM_CACHE / kmem_cache_zalloc /
 * kmem_cache_free / kmem_cache_destroy calls, with a simple singly linked list in place of the
 * kernel's hlist_bl, and printf in place of the kernel log.
 *
 *   make c-example            # against a server started for it (scripts/with-server.sh)
 *   cc -DDEBUG ...            # the debug flags of the document: red zones, poison, owner
 *                             # records, consistency checks (every operation an IPC)
 *
 * Build: cc -Itarget/c/include examples/c/hash_table.c -Ltarget/c -lmemclient \
 *           -lpthread -ldl -lm -o hash_table
 * Run:   MEMSERVER_SOCKET=target/run/memserver.sock MEMSERVER_CLIENT=app ./hash_table
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "memclient.h"

#define LOG_ERR(fmt, ...) fprintf(stderr, "ERR " fmt "\n", __VA_ARGS__)
#define LOG_INFO(fmt, ...) printf("INFO " fmt "\n", __VA_ARGS__)

#define TOA_IPV6_HASH_BITS 8
#define TOA_IPV6_HASH_SIZE (1u << TOA_IPV6_HASH_BITS)
/* Nodes the test puts in the table, and how many it frees before unloading. */
#define NODES 1000
#define FREED_BY_TEST (NODES / 2)

#ifdef DEBUG
#define TOA_IPV6_SLAB_FLAG (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_CONSISTENCY_CHECKS)
#else
#define TOA_IPV6_SLAB_FLAG 0
#endif

/* The kernel's hlist_bl, reduced to what the example needs: a singly linked list. */
struct list_node {
    struct list_node *next;
};

struct list_head {
    struct list_node *first;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct ipv6_address {
    uint8_t bytes[16];
};

/* One connection: the address the server sees (the key) and the client's real address
 * carried in the TOA option (the value). */
struct toa_ipv6_node {
    struct list_node list;
    struct ipv6_address saddr;
    uint16_t sport;
    struct ipv6_address real_addr;
    uint16_t real_port;
    uint64_t lookups;
};
typedef struct toa_ipv6_node toa_ipv6_node_t;

/* The kmem_cache of the nodes. */
struct kmem_cache *toa_ipv6_node_slab = NULL;
/* The ipv6 table. */
static struct list_head toa_ipv6_table[TOA_IPV6_HASH_SIZE];

static unsigned int toa_ipv6_hash(const struct ipv6_address *addr, uint16_t port) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof addr->bytes; i++) {
        h = (h ^ addr->bytes[i]) * 16777619u;
    }
    h = (h ^ port) * 16777619u;
    return h & (TOA_IPV6_HASH_SIZE - 1);
}

static void address_of(unsigned int i, struct ipv6_address *addr, uint16_t *port) {
    memset(addr, 0, sizeof *addr);
    addr->bytes[0] = 0x20;
    addr->bytes[1] = 0x01;
    addr->bytes[14] = (uint8_t)(i >> 8);
    addr->bytes[15] = (uint8_t)i;
    *port = (uint16_t)(1024 + i);
}

/* Creates the kmem_cache. */
static int init_toa_ipv6_slab(void) {
    static const char *tag = __func__;
    /* Objects of the size of struct toa_ipv6_node: every allocation below is one. */
    toa_ipv6_node_slab = KMEM_CACHE(toa_ipv6_node, TOA_IPV6_SLAB_FLAG);
    if (toa_ipv6_node_slab == NULL) {
        LOG_ERR("%s, create slab failed, maybe out of memory: %s", tag, memclient_last_error_message());
        return -1;
    }
    return 0;
}

/* Only when the module unloads: empties the table without locking, then destroys the cache. */
static void uninit_toa_ipv6_slab(void) {
    static const char *tag = __func__;
    int count = 0;

    /* Every object must go back before kmem_cache_destroy. */
    for (unsigned int idx = 0; idx < TOA_IPV6_HASH_SIZE; idx++) {
        struct list_node *node = toa_ipv6_table[idx].first;
        while (node != NULL) {
            struct list_node *tmp = node->next;
            toa_ipv6_node_t *entry = container_of(node, toa_ipv6_node_t, list);
            toa_ipv6_table[idx].first = tmp;
            kmem_cache_free(toa_ipv6_node_slab, entry);
            ++count;
            node = tmp;
        }
    }
    LOG_INFO("%s, there are %d ipv6 nodes not freed", tag, count);

    kmem_cache_destroy(toa_ipv6_node_slab);
    toa_ipv6_node_slab = NULL;
}

static toa_ipv6_node_t *toa_ipv6_lookup(const struct ipv6_address *saddr, uint16_t sport) {
    struct list_node *node = toa_ipv6_table[toa_ipv6_hash(saddr, sport)].first;
    for (; node != NULL; node = node->next) {
        toa_ipv6_node_t *entry = container_of(node, toa_ipv6_node_t, list);
        if (entry->sport == sport && memcmp(&entry->saddr, saddr, sizeof *saddr) == 0) {
            return entry;
        }
    }
    return NULL;
}

static int toa_ipv6_insert(unsigned int i) {
    toa_ipv6_node_t *node = kmem_cache_zalloc(toa_ipv6_node_slab, GFP_KERNEL);
    if (node == NULL) {
        LOG_ERR("insert %u: %s", i, memclient_last_error_message());
        return -1;
    }
    const unsigned char *bytes = (const unsigned char *)node;
    for (size_t b = 0; b < sizeof *node; b++) {
        if (bytes[b] != 0) {
            LOG_ERR("insert %u: kmem_cache_zalloc returned a node not zeroed (byte %zu)", i, b);
            return -1;
        }
    }
    address_of(i, &node->saddr, &node->sport);
    address_of(i + 50000, &node->real_addr, &node->real_port);
    struct list_head *bucket = &toa_ipv6_table[toa_ipv6_hash(&node->saddr, node->sport)];
    node->list.next = bucket->first;
    bucket->first = &node->list;
    return 0;
}

static int toa_ipv6_delete(unsigned int i) {
    struct ipv6_address saddr;
    uint16_t sport;
    address_of(i, &saddr, &sport);
    struct list_node **link = &toa_ipv6_table[toa_ipv6_hash(&saddr, sport)].first;
    for (; *link != NULL; link = &(*link)->next) {
        toa_ipv6_node_t *entry = container_of(*link, toa_ipv6_node_t, list);
        if (entry->sport == sport && memcmp(&entry->saddr, &saddr, sizeof saddr) == 0) {
            *link = entry->list.next;
            kmem_cache_free(toa_ipv6_node_slab, entry);
            return 0;
        }
    }
    LOG_ERR("delete %u: not found", i);
    return -1;
}

/* What the module does between load and unload: connections come and go. */
static int test(void) {
    for (unsigned int i = 0; i < NODES; i++) {
        if (toa_ipv6_insert(i) != 0) {
            return -1;
        }
    }
    for (unsigned int i = 0; i < NODES; i++) {
        struct ipv6_address saddr, real;
        uint16_t sport, real_port;
        address_of(i, &saddr, &sport);
        address_of(i + 50000, &real, &real_port);
        toa_ipv6_node_t *node = toa_ipv6_lookup(&saddr, sport);
        if (node == NULL || node->real_port != real_port || memcmp(&node->real_addr, &real, sizeof real) != 0) {
            LOG_ERR("lookup %u: %s", i, node == NULL ? "missing" : "wrong value");
            return -1;
        }
        node->lookups++;
    }
    for (unsigned int i = 0; i < FREED_BY_TEST; i++) {
        if (toa_ipv6_delete(i * 2) != 0) {
            return -1;
        }
    }
    return 0;
}

int main(void) {
    if (init_toa_ipv6_slab() != 0) {
        return 1;
    }
    if (test() != 0) {
        return 1;
    }
    struct memclient_stats before;
    if (memclient_stats(&before) != 0) {
        LOG_ERR("stats: %s", memclient_last_error_message());
        return 1;
    }
    uninit_toa_ipv6_slab();
    struct memclient_stats after;
    if (memclient_stats(&after) != 0) {
        LOG_ERR("stats: %s", memclient_last_error_message());
        return 1;
    }
    printf("hash_table: flags=0x%x nodes=%d freed_by_test=%d live_before_unload=%llu allocs=%llu frees=%llu "
           "alloc_hits=%llu free_hits=%llu requests=%llu live_objects=%llu\n",
           (unsigned int)TOA_IPV6_SLAB_FLAG, NODES, FREED_BY_TEST, (unsigned long long)before.live_objects,
           (unsigned long long)after.allocs,
           (unsigned long long)after.frees, (unsigned long long)after.alloc_hits,
           (unsigned long long)after.free_hits, (unsigned long long)after.requests,
           (unsigned long long)after.live_objects);
    /* kfreed memory may sit in the kmalloc caches' magazines; nothing else may be live. */
    if (after.live_objects != after.magazine_objects) {
        LOG_ERR("%llu objects still live after kmem_cache_destroy",
                (unsigned long long)(after.live_objects - after.magazine_objects));
        return 1;
    }
    return 0;
}
