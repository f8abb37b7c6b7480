/*
 * heap.h - a binary min-heap of nodes the caller embeds in its own
 * structs (like timers.c's deadlines and the upstream engine's polls;
 * VG_CONTAINER_OF gets back to the struct), keyed by a 64-bit number
 * such as a deadline in milliseconds. A node knows its place, so removing
 * or re-keying one is O(log n) with no search. Not thread-safe: the
 * caller serializes.
 */
#ifndef VG_HEAP_H
#define VG_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/container.h"

typedef struct vg_heap_node {
    int64_t key;
    int index; /* its place in the heap; -1 when not in one */
} vg_heap_node;

typedef struct vg_heap {
    vg_heap_node **items;
    int len, cap;
} vg_heap; /* zeroed = empty */

static inline void vg_heap_node_init(vg_heap_node *n)
{
    n->key = 0;
    n->index = -1;
}

static inline bool vg_heap_node_queued(const vg_heap_node *n)
{
    return n->index >= 0;
}

/* The node with the smallest key, or NULL when the heap is empty. */
static inline vg_heap_node *vg_heap_first(const vg_heap *h)
{
    return h->len > 0 ? h->items[0] : NULL;
}

/* Puts n in the heap at key, or moves it there if it is in already.
 * 0, or -1 when the heap cannot grow (n is then not in it). */
int vg_heap_push(vg_heap *h, vg_heap_node *n, int64_t key);
/* Takes n out; nothing if it is not in. */
void vg_heap_remove(vg_heap *h, vg_heap_node *n);
/* Frees the heap's array; the nodes still in it are marked out. */
void vg_heap_destroy(vg_heap *h);

#endif
