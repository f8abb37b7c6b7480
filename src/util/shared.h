/*
 * shared.h - immutable text shared by reference, and a one-entry cache of
 * such a text under a version number.
 *
 * An answer that changes rarely (the models list changes only when a
 * provider's availability does) is rendered once and then sent to every
 * client from the same bytes: each response holds a reference and drops
 * it when libmicrohttpd has sent it, so a newer rendering can replace the
 * cached one while older responses are still on the wire.
 */
#ifndef VG_SHARED_H
#define VG_SHARED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vg_shared_text {
    atomic_int refs;
    size_t len;
    char data[]; /* len bytes, then a NUL */
} vg_shared_text;

/* A copy of len bytes of text with one reference; NULL without memory. */
vg_shared_text *vg_shared_text_new(const char *text, size_t len);
vg_shared_text *vg_shared_text_ref(vg_shared_text *t);
void vg_shared_text_unref(vg_shared_text *t);
/* The text whose data is data (for a callback handed only the bytes). */
vg_shared_text *vg_shared_text_of(void *data);

typedef struct vg_text_cache {
    pthread_mutex_t lock;
    uint64_t version;
    vg_shared_text *text; /* NULL: nothing cached yet */
} vg_text_cache;

void vg_text_cache_init(vg_text_cache *c);
void vg_text_cache_destroy(vg_text_cache *c);
/* A new reference to the cached text if it was rendered at version, else
 * NULL. */
vg_shared_text *vg_text_cache_get(vg_text_cache *c, uint64_t version);
/* Caches t (a reference of its own is taken) as rendered at version. */
void vg_text_cache_put(vg_text_cache *c, uint64_t version,
                       vg_shared_text *t);

#endif
