/*
 * clock.h - the two clocks vidgate reads. Wall time, in Unix
 * milliseconds, is what the store records and clients see; monotonic
 * time measures durations and deadlines, which must not jump when the
 * wall clock is set.
 */
#ifndef VG_CLOCK_H
#define VG_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t vg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t vg_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t vg_monotonic_ms(void)
{
    return vg_monotonic_ns() / 1000000;
}

#endif
