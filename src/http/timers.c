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
static vg_timer **heap;
static int count, capacity;
static bool running, stopping;
static pthread_t thread;

int64_t vg_timers_now_ms(void)
{
    return vg_monotonic_ms();
}

static void place(int i, vg_timer *t)
{
    heap[i] = t;
    t->index = i;
}

static void sift_up(int i)
{
    vg_timer *t = heap[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (heap[parent]->at_ms <= t->at_ms)
            break;
        place(i, heap[parent]);
        i = parent;
    }
    place(i, t);
}

static void sift_down(int i)
{
    vg_timer *t = heap[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= count)
            break;
        if (child + 1 < count && heap[child + 1]->at_ms < heap[child]->at_ms)
            child++;
        if (heap[child]->at_ms >= t->at_ms)
            break;
        place(i, heap[child]);
        i = child;
    }
    place(i, t);
}

/* Caller holds the lock. */
static void remove_at(int i)
{
    vg_timer *gone = heap[i];
    gone->index = -1;
    count--;
    if (i == count)
        return;
    vg_timer *moved = heap[count];
    place(i, moved);
    sift_down(i);
    sift_up(moved->index);
}

static void *timer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-timers");
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        if (count == 0) {
            pthread_cond_wait(&changed, &lock);
            continue;
        }
        int64_t now = vg_timers_now_ms();
        vg_timer *first = heap[0];
        if (first->at_ms <= now) {
            remove_at(0);
            first->fire(first);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = first->at_ms - now;
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
    for (int i = 0; i < count; i++)
        heap[i]->index = -1;
    count = 0;
    free(heap);
    heap = NULL;
    capacity = 0;
    pthread_cond_destroy(&changed);
}

void vg_timer_init(vg_timer *timer, void (*fire)(vg_timer *timer))
{
    timer->fire = fire;
    timer->at_ms = 0;
    timer->index = -1;
}

void vg_timer_set(vg_timer *timer, int64_t at_ms)
{
    pthread_mutex_lock(&lock);
    if (timer->index >= 0)
        remove_at(timer->index);
    if (count == capacity) {
        int grown = capacity ? capacity * 2 : 1024;
        vg_timer **bigger = realloc(heap, (size_t)grown * sizeof(*heap));
        if (bigger == NULL) {
            /* Without room the deadline cannot be kept; firing at once
             * is the safe failure (a wait ends early, not never). */
            pthread_mutex_unlock(&lock);
            timer->fire(timer);
            return;
        }
        heap = bigger;
        capacity = grown;
    }
    timer->at_ms = at_ms;
    place(count++, timer);
    sift_up(count - 1);
    if (heap[0] == timer)
        pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
}

void vg_timer_cancel(vg_timer *timer)
{
    pthread_mutex_lock(&lock);
    if (timer->index >= 0)
        remove_at(timer->index);
    pthread_mutex_unlock(&lock);
}
