/*
 * shared.c - reference-counted immutable text and its versioned cache.
 */
#include "util/shared.h"

#include <stdlib.h>
#include <string.h>

vg_shared_text *vg_shared_text_new(const char *text, size_t len)
{
    vg_shared_text *t = malloc(sizeof(*t) + len + 1);
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    t->len = len;
    memcpy(t->data, text, len);
    t->data[len] = '\0';
    return t;
}

vg_shared_text *vg_shared_text_ref(vg_shared_text *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void vg_shared_text_unref(vg_shared_text *t)
{
    if (t != NULL &&
        atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

vg_shared_text *vg_shared_text_of(void *data)
{
    return (vg_shared_text *)((char *)data -
                              offsetof(vg_shared_text, data));
}

void vg_text_cache_init(vg_text_cache *c)
{
    pthread_mutex_init(&c->lock, NULL);
    c->version = 0;
    c->text = NULL;
}

void vg_text_cache_destroy(vg_text_cache *c)
{
    vg_shared_text_unref(c->text);
    c->text = NULL;
    pthread_mutex_destroy(&c->lock);
}

vg_shared_text *vg_text_cache_get(vg_text_cache *c, uint64_t version)
{
    vg_shared_text *t = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->text != NULL && c->version == version)
        t = vg_shared_text_ref(c->text);
    pthread_mutex_unlock(&c->lock);
    return t;
}

void vg_text_cache_put(vg_text_cache *c, uint64_t version,
                       vg_shared_text *t)
{
    vg_shared_text_ref(t);
    pthread_mutex_lock(&c->lock);
    vg_shared_text *old = c->text;
    c->text = t;
    c->version = version;
    pthread_mutex_unlock(&c->lock);
    vg_shared_text_unref(old);
}
