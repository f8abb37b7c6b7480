/*
 * table.c - see table.h.
 */
#include "util/table.h"

#include <stdlib.h>
#include <string.h>

uint32_t vg_hash_string(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int vg_table_init(vg_table *t, size_t buckets)
{
    size_t n = 16;
    while (n < buckets)
        n *= 2;
    t->buckets = calloc(n, sizeof(*t->buckets));
    t->mask = n - 1;
    t->count = 0;
    return t->buckets != NULL ? 0 : -1;
}

void vg_table_destroy(vg_table *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->mask = 0;
    t->count = 0;
}

vg_table_node *vg_table_find(const vg_table *t, const char *key)
{
    uint32_t h = vg_hash_string(key);
    vg_table_node *n = t->buckets[h & t->mask];
    while (n != NULL && (n->hash != h || strcmp(n->key, key) != 0))
        n = n->next;
    return n;
}

/* Doubles the buckets when the chains average more than two nodes. */
static void grow(vg_table *t)
{
    size_t n = (t->mask + 1) * 2;
    vg_table_node **bigger = calloc(n, sizeof(*bigger));
    if (bigger == NULL)
        return;
    for (size_t b = 0; b <= t->mask; b++) {
        vg_table_node *node = t->buckets[b];
        while (node != NULL) {
            vg_table_node *next = node->next;
            vg_table_node **head = &bigger[node->hash & (n - 1)];
            node->next = *head;
            *head = node;
            node = next;
        }
    }
    free(t->buckets);
    t->buckets = bigger;
    t->mask = n - 1;
}

void vg_table_insert(vg_table *t, vg_table_node *n, const char *key)
{
    if (t->count >= 2 * (t->mask + 1))
        grow(t);
    n->key = key;
    n->hash = vg_hash_string(key);
    vg_table_node **head = &t->buckets[n->hash & t->mask];
    n->next = *head;
    *head = n;
    t->count++;
}

void vg_table_remove(vg_table *t, vg_table_node *n)
{
    vg_table_node **p = &t->buckets[n->hash & t->mask];
    while (*p != NULL && *p != n)
        p = &(*p)->next;
    if (*p == NULL)
        return; /* not in: nothing to take out */
    *p = n->next;
    n->next = NULL;
    t->count--;
}
