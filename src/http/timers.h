/*
 * timers.h - one thread that fires deadlines for the HTTP layer: the end
 * of a bounded synchronous wait (Prefer: wait), Server-Sent Events
 * keep-alives and store polls.
 *
 * Suspended connections hold no thread, so something must wake them when
 * time runs out; a heap of deadlines served by a single thread costs
 * nothing per waiting client but the vg_timer it embeds.
 */
#ifndef VG_TIMERS_H
#define VG_TIMERS_H

#include <stdint.h>

#include "util/heap.h"

typedef struct vg_timer vg_timer;
struct vg_timer {
    /* Runs on the timer thread with the timers' lock held: must be quick
     * and must not set or cancel timers. */
    void (*fire)(vg_timer *timer);
    /* Internal: its deadline, in the heap while armed. */
    vg_heap_node node;
};

int vg_timers_start(void);
void vg_timers_stop(void);

/* Monotonic milliseconds, the clock timers run on. */
int64_t vg_timers_now_ms(void);

/* Zeroes a timer so that cancelling it before any set is harmless. */
void vg_timer_init(vg_timer *timer, void (*fire)(vg_timer *timer));
/* Arms (or re-arms) the timer for at_ms (vg_timers_now_ms clock). */
void vg_timer_set(vg_timer *timer, int64_t at_ms);
/* Disarms; after it returns, fire is not running and will not run. */
void vg_timer_cancel(vg_timer *timer);

#endif
