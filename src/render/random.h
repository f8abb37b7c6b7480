/*
 * random.h - the renderer's one pseudo-random generator.
 *
 * Everything a clip varies by (palette, paths, title motion, music) is
 * drawn from splitmix64 streams seeded by the request's seed, so equal
 * requests give equal bytes. One definition keeps every part of the
 * renderer on the same sequence.
 */
#ifndef VG_RENDER_RANDOM_H
#define VG_RENDER_RANDOM_H

#include <stdint.h>

/* splitmix64: tiny, well mixed, fully determined by the state. */
static inline uint64_t vg_random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi), with 24 bits of resolution. */
static inline float vg_random_between(uint64_t *state, float lo, float hi)
{
    float unit = (float)(vg_random_next(state) >> 40) / (float)(1 << 24);
    return lo + (hi - lo) * unit;
}

/* +1 or -1. */
static inline float vg_random_sign(uint64_t *state)
{
    return (vg_random_next(state) & 1) ? 1.0f : -1.0f;
}

#endif
