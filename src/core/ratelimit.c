/*
 * ratelimit.c - token buckets in a hash table split into stripes, each
 * with its own lock, so requests of different keys rarely contend; see
 * ratelimit.h.
 */
#include "core/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/table.h"

#define STRIPES 64
#define BUCKETS_PER_STRIPE 256

/* Tokens are counted in thousandths so that slow rates still refill
 * smoothly with millisecond clocks. */
#define MILLI 1000

typedef struct bucket {
    char key_id[37];
    int64_t tokens; /* thousandths of a token */
    int64_t updated_ms;
    int per_minute; /* the budget it was filled for */
    vg_table_node in_table;
} bucket;

typedef struct stripe {
    pthread_mutex_t lock;
    vg_table table; /* its buckets by key id */
} stripe;

struct vg_ratelimit {
    stripe stripes[STRIPES];
};

vg_ratelimit *vg_ratelimit_new(void)
{
    vg_ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&rl->stripes[i].lock, NULL);
        if (vg_table_init(&rl->stripes[i].table, BUCKETS_PER_STRIPE) != 0) {
            vg_ratelimit_free(rl);
            return NULL;
        }
    }
    return rl;
}

void vg_ratelimit_free(vg_ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        stripe *s = &rl->stripes[i];
        for (size_t j = 0; s->table.buckets != NULL && j <= s->table.mask;
             j++) {
            vg_table_node *n = s->table.buckets[j];
            while (n != NULL) {
                vg_table_node *next = n->next;
                free(VG_CONTAINER_OF(n, bucket, in_table));
                n = next;
            }
        }
        vg_table_destroy(&s->table);
        pthread_mutex_destroy(&s->lock);
    }
    free(rl);
}

int vg_ratelimit_take(vg_ratelimit *rl, const char *key_id, int per_minute,
                      int64_t now_ms)
{
    /* The stripe from the hash's high bits: its table uses the low. */
    stripe *s = &rl->stripes[(vg_hash_string(key_id) >> 24) % STRIPES];
    int64_t capacity = (int64_t)per_minute * MILLI;
    int wait_s = 0;
    pthread_mutex_lock(&s->lock);
    vg_table_node *found = vg_table_find(&s->table, key_id);
    bucket *b = found != NULL ? VG_CONTAINER_OF(found, bucket, in_table)
                              : NULL;
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL) {
            /* Failing open: a limiter out of memory must not refuse
             * every request. */
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        strncpy(b->key_id, key_id, sizeof(b->key_id) - 1);
        b->tokens = capacity;
        b->updated_ms = now_ms;
        b->per_minute = per_minute;
        vg_table_insert(&s->table, &b->in_table, b->key_id);
    }
    if (b->per_minute != per_minute) {
        /* The key's limit changed: what it has spent still counts, so a
         * raised limit is there at once and a lowered one is not
         * exceeded by what was left of the old. */
        b->tokens += capacity - (int64_t)b->per_minute * MILLI;
        if (b->tokens < 0)
            b->tokens = 0;
        if (b->tokens > capacity)
            b->tokens = capacity;
        b->per_minute = per_minute;
    }
    int64_t elapsed = now_ms - b->updated_ms;
    if (elapsed > 0) {
        /* per_minute tokens a minute = per_minute thousandths a 60 ms. */
        int64_t refill = elapsed * per_minute / 60;
        if (b->tokens + refill >= capacity) {
            b->tokens = capacity;
            b->updated_ms = now_ms;
        } else {
            /* Only the time turned into tokens is consumed, so slow
             * rates do not lose their fractions to rounding. */
            b->tokens += refill;
            b->updated_ms += refill * 60 / per_minute;
        }
    }
    if (b->tokens >= MILLI) {
        b->tokens -= MILLI;
    } else {
        int64_t missing_ms =
            ((MILLI - b->tokens) * 60 + per_minute - 1) / per_minute;
        wait_s = (int)((missing_ms + 999) / 1000);
        if (wait_s < 1)
            wait_s = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return wait_s;
}
