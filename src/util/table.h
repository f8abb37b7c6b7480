/*
 * table.h - a chained hash table of nodes the caller embeds in its own
 * structs, keyed by a string the struct holds (a job id, a key id). It
 * grows by doubling as it fills, so a lookup stays a short chain however
 * many jobs are in memory. Not thread-safe: the caller serializes.
 */
#ifndef VG_TABLE_H
#define VG_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/container.h"

typedef struct vg_table_node {
    struct vg_table_node *next; /* in its bucket */
    const char *key;            /* the struct's own key, while in */
    uint32_t hash;
} vg_table_node;

/* Callers may walk the buckets (buckets[0..mask], each a chain through
 * next), as long as they insert nothing meanwhile. */
typedef struct vg_table {
    vg_table_node **buckets;
    size_t mask;  /* buckets - 1, a power of two less one */
    size_t count; /* nodes in the table */
} vg_table;

/* FNV-1a of s, the hash the table uses (and stripes may split on). */
uint32_t vg_hash_string(const char *s);

/* An empty table of at least `buckets` buckets: 0, or -1 without
 * memory. */
int vg_table_init(vg_table *t, size_t buckets);
/* Frees the buckets, not the nodes. */
void vg_table_destroy(vg_table *t);

/* The node whose key is key, or NULL. */
vg_table_node *vg_table_find(const vg_table *t, const char *key);
/* Adds n under key (a string that stays valid, unchanged, while n is in;
 * no node may have that key already). Never fails: a table that cannot
 * grow only gets longer chains. */
void vg_table_insert(vg_table *t, vg_table_node *n, const char *key);
/* Takes n out; nothing when it is not in (a node never inserted must be
 * zeroed, as calloc leaves it). */
void vg_table_remove(vg_table *t, vg_table_node *n);

#endif
