/*
 * heap.c - see heap.h.
 */
#include "util/heap.h"

#include <stdlib.h>

static void place(vg_heap *h, int i, vg_heap_node *n)
{
    h->items[i] = n;
    n->index = i;
}

static void sift_up(vg_heap *h, int i)
{
    vg_heap_node *n = h->items[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->items[parent]->key <= n->key)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(vg_heap *h, int i)
{
    vg_heap_node *n = h->items[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len &&
            h->items[child + 1]->key < h->items[child]->key)
            child++;
        if (h->items[child]->key >= n->key)
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, n);
}

int vg_heap_push(vg_heap *h, vg_heap_node *n, int64_t key)
{
    if (n->index >= 0) {
        int64_t old = n->key;
        n->key = key;
        if (key < old)
            sift_up(h, n->index);
        else
            sift_down(h, n->index);
        return 0;
    }
    if (h->len == h->cap) {
        int cap = h->cap > 0 ? h->cap * 2 : 256;
        vg_heap_node **grown = realloc(h->items, (size_t)cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        h->items = grown;
        h->cap = cap;
    }
    n->key = key;
    place(h, h->len++, n);
    sift_up(h, n->index);
    return 0;
}

void vg_heap_remove(vg_heap *h, vg_heap_node *n)
{
    int i = n->index;
    if (i < 0)
        return;
    n->index = -1;
    h->len--;
    if (i == h->len)
        return;
    vg_heap_node *moved = h->items[h->len];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->index);
}

void vg_heap_destroy(vg_heap *h)
{
    for (int i = 0; i < h->len; i++)
        h->items[i]->index = -1;
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}
