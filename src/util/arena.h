/*
 * arena.h - a per-request bump allocator.
 *
 * A request owns many small strings and JSON fragments whose lifetimes all
 * end together. Allocating them from one arena, freed in one go when the
 * request completes, keeps error paths leak-free (the nginx pool idea).
 */
#ifndef VG_ARENA_H
#define VG_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct vg_arena_block vg_arena_block;
typedef struct vg_arena {
    vg_arena_block *head;
} vg_arena;

void vg_arena_init(vg_arena *arena);
/* Returns zeroed memory aligned for any type; aborts on out-of-memory. */
void *vg_arena_alloc(vg_arena *arena, size_t size);
char *vg_arena_strdup(vg_arena *arena, const char *s);
char *vg_arena_strndup(vg_arena *arena, const char *s, size_t n);
char *vg_arena_sprintf(vg_arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vg_arena_free(vg_arena *arena);

#endif
