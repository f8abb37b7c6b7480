/*
 * ratelimit.h - requests per minute per API key, as token buckets.
 *
 * Each key has a bucket holding up to a minute's budget; every request
 * takes one token and tokens flow back continuously, so a key may burst
 * its whole minute at once but never exceed the rate over time. Buckets
 * live in this process: with several instances behind a balancer each
 * enforces the limit on its own share of the traffic.
 */
#ifndef VG_RATELIMIT_H
#define VG_RATELIMIT_H

#include <stdint.h>

typedef struct vg_ratelimit vg_ratelimit;

vg_ratelimit *vg_ratelimit_new(void);
void vg_ratelimit_free(vg_ratelimit *rl);

/* Takes a token from key_id's bucket of per_minute (> 0). Returns 0 when
 * the request may go on, otherwise the whole seconds until a token is
 * back (at least 1), for Retry-After. */
int vg_ratelimit_take(vg_ratelimit *rl, const char *key_id, int per_minute,
                      int64_t now_ms);

#endif
