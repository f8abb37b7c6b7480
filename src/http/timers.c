/*
 * timers.c - a binary min-heap of deadlines and the thread that fires
 * them; see timers.h.
 */
#include "http/timers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util/clock.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static vg_heap heap;
static bool running, stopping;
static pthread_t thread;

int64_t vg_timers_now_ms(void)
{
    return vg_monotonic_ms();
}

static void *timer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-timers");
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        vg_heap_node *head = vg_heap_first(&heap);
        if (head == NULL) {
            pthread_cond_wait(&changed, &lock);
            continue;
        }
        int64_t now = vg_timers_now_ms();
        vg_timer *first = VG_CONTAINER_OF(head, vg_timer, node);
        if (head->key <= now) {
            vg_heap_remove(&heap, head);
            first->fire(first);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = head->key - now;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&changed, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int vg_timers_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attr);
    pthread_condattr_destroy(&attr);
    stopping = false;
    if (pthread_create(&thread, NULL, timer_main, NULL) != 0)
        return -1;
    running = true;
    return 0;
}

void vg_timers_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    running = false;
    vg_heap_destroy(&heap);
    pthread_cond_destroy(&changed);
}

void vg_timer_init(vg_timer *timer, void (*fire)(vg_timer *timer))
{
    timer->fire = fire;
    vg_heap_node_init(&timer->node);
}

void vg_timer_set(vg_timer *timer, int64_t at_ms)
{
    pthread_mutex_lock(&lock);
    if (vg_heap_push(&heap, &timer->node, at_ms) != 0) {
        /* Without room the deadline cannot be kept; firing at once is
         * the safe failure (a wait ends early, not never). */
        pthread_mutex_unlock(&lock);
        timer->fire(timer);
        return;
    }
    if (vg_heap_first(&heap) == &timer->node)
        pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
}

void vg_timer_cancel(vg_timer *timer)
{
    pthread_mutex_lock(&lock);
    vg_heap_remove(&heap, &timer->node);
    pthread_mutex_unlock(&lock);
}
