/*
 * test_timers.c - the HTTP layer's deadline thread (http/timers.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/timers.h"

typedef struct probe {
    vg_timer timer;
    atomic_int fired;
    atomic_llong at;
    int order;
} probe;

static atomic_int sequence;

static void on_fire(vg_timer *timer)
{
    probe *p = (probe *)timer;
    p->order = atomic_fetch_add(&sequence, 1);
    atomic_store(&p->at, vg_timers_now_ms());
    atomic_fetch_add(&p->fired, 1);
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&sequence, 0);
    return vg_timers_start();
}

static int teardown(void **state)
{
    (void)state;
    vg_timers_stop();
    return 0;
}

static void wait_for(probe *p, int ms)
{
    for (int i = 0; i < ms && atomic_load(&p->fired) == 0; i++)
        usleep(1000);
}

static void test_timers_fire_in_deadline_order_not_set_order(void **state)
{
    (void)state;
    probe p[5];
    int64_t now = vg_timers_now_ms();
    int delays[5] = {120, 40, 80, 20, 100};
    for (int i = 0; i < 5; i++) {
        vg_timer_init(&p[i].timer, on_fire);
        atomic_store(&p[i].fired, 0);
        vg_timer_set(&p[i].timer, now + delays[i]);
    }
    wait_for(&p[0], 2000);
    int expected[5] = {4, 1, 2, 0, 3};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&p[i].fired), 1);
        assert_int_equal(p[i].order, expected[i]);
        assert_true(atomic_load(&p[i].at) >= now + delays[i]);
    }
}

static void test_a_cancelled_timer_never_fires(void **state)
{
    (void)state;
    probe a, b;
    vg_timer_init(&a.timer, on_fire);
    vg_timer_init(&b.timer, on_fire);
    atomic_store(&a.fired, 0);
    atomic_store(&b.fired, 0);
    int64_t now = vg_timers_now_ms();
    vg_timer_set(&a.timer, now + 30);
    vg_timer_set(&b.timer, now + 60);
    vg_timer_cancel(&a.timer);
    vg_timer_cancel(&a.timer); /* twice is harmless */
    wait_for(&b, 2000);
    assert_int_equal(atomic_load(&b.fired), 1);
    assert_int_equal(atomic_load(&a.fired), 0);
}

static void test_setting_again_moves_the_deadline(void **state)
{
    (void)state;
    probe a;
    vg_timer_init(&a.timer, on_fire);
    atomic_store(&a.fired, 0);
    int64_t now = vg_timers_now_ms();
    vg_timer_set(&a.timer, now + 10000);
    vg_timer_set(&a.timer, now + 20);
    wait_for(&a, 2000);
    assert_int_equal(atomic_load(&a.fired), 1);
}

static void test_many_timers_all_fire_once(void **state)
{
    (void)state;
    enum { N = 3000 };
    static probe p[N];
    int64_t now = vg_timers_now_ms();
    for (int i = 0; i < N; i++) {
        vg_timer_init(&p[i].timer, on_fire);
        atomic_store(&p[i].fired, 0);
        vg_timer_set(&p[i].timer, now + (i * 7919) % 50);
    }
    /* Cancel every third before it can fire... or after: either way it
     * must have fired at most once. */
    for (int i = 0; i < N; i += 3)
        vg_timer_cancel(&p[i].timer);
    usleep(200 * 1000);
    for (int i = 0; i < N; i++) {
        assert_true(atomic_load(&p[i].fired) <= 1);
        if (i % 3 != 0)
            assert_int_equal(atomic_load(&p[i].fired), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_timers_fire_in_deadline_order_not_set_order, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_a_cancelled_timer_never_fires,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_setting_again_moves_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_timers_all_fire_once,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
