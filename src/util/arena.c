/*
 * arena.c - per-request bump allocator; see arena.h.
 */
#include "util/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks start small and double: most requests need well under 1 KiB,
 * and thousands of them may wait at once for their jobs, so the first
 * block's size is paid per waiting client. */
#define VG_ARENA_FIRST_BLOCK 1024
#define VG_ARENA_MAX_BLOCK 8192

struct vg_arena_block {
    vg_arena_block *next;
    size_t used;
    size_t size;
    max_align_t data[];
};

void vg_arena_init(vg_arena *arena)
{
    arena->head = NULL;
}

void *vg_arena_alloc(vg_arena *arena, size_t size)
{
    size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    vg_arena_block *b = arena->head;
    if (b == NULL || b->size - b->used < size) {
        size_t cap = b == NULL ? VG_ARENA_FIRST_BLOCK : b->size * 2;
        if (cap > VG_ARENA_MAX_BLOCK)
            cap = VG_ARENA_MAX_BLOCK;
        if (cap < size)
            cap = size;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL) {
            fputs("vidgate: out of memory\n", stderr);
            abort();
        }
        b->size = cap;
        b->used = 0;
        b->next = arena->head;
        arena->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *vg_arena_strndup(vg_arena *arena, const char *s, size_t n)
{
    char *p = vg_arena_alloc(arena, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *vg_arena_strdup(vg_arena *arena, const char *s)
{
    return vg_arena_strndup(arena, s, strlen(s));
}

char *vg_arena_sprintf(vg_arena *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = vg_arena_alloc(arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void vg_arena_free(vg_arena *arena)
{
    vg_arena_block *b = arena->head;
    while (b != NULL) {
        vg_arena_block *next = b->next;
        free(b);
        b = next;
    }
    arena->head = NULL;
}
