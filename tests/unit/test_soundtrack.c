/*
 * test_soundtrack.c - the local renderer's audio (render/soundtrack.h and
 * render/speech.h), checked by measuring the samples the encoder would
 * get: their count, their peak, the energy in the speech band where the
 * prompt is spoken, and their bits across runs, seeds and threads.
 *
 * "Speech is heard" is measured, not assumed: the 300-3000 Hz energy
 * while the prompt is spoken must clearly exceed that of the bed alone
 * (the same seed with nothing to say) and, by far, that of the ducked bed
 * playing under the voice (the bed layer of the same soundtrack).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "render/soundtrack.h"
#include "render/speech.h"

#define RATE 48000
/* The encoder's AAC frame size: fill() is called this many at a time. */
#define FRAME 1024

static const char english[] = "a paper boat drifting across a pond at dusk";
static const char chinese[] = "一只纸船在黄昏时漂过池塘";
static const char arabic[] = "قارب ورقي ينجرف عبر بركة عند الغسق";
static const char russian[] = "бумажный кораблик плывёт по пруду в сумерках";

/* ---- helpers ----------------------------------------------------------- */

typedef struct audio {
    float *left, *right;
    int64_t n;
    vg_soundtrack_info info;
    char voice[16]; /* info.voice points into the soundtrack: a copy */
} audio;

static vg_soundtrack *make(const char *prompt, uint32_t seed, int seconds)
{
    vg_error err = {0};
    vg_soundtrack *st =
        vg_soundtrack_new(prompt, seed, seconds, RATE, 2, NULL, &err);
    if (st == NULL)
        fail_msg("soundtrack failed: %s: %s", err.code, err.message);
    return st;
}

/* Every sample, fetched frame by frame as the encoder does. */
static audio play(vg_soundtrack *st, unsigned layers)
{
    audio a = {0};
    vg_soundtrack_set_layers(st, layers);
    vg_soundtrack_get_info(st, &a.info);
    if (a.info.voice != NULL)
        snprintf(a.voice, sizeof(a.voice), "%s", a.info.voice);
    a.info.voice = NULL;
    a.n = a.info.total;
    a.left = malloc((size_t)a.n * sizeof(float));
    a.right = malloc((size_t)a.n * sizeof(float));
    assert_non_null(a.left);
    assert_non_null(a.right);
    for (int64_t i = 0; i < a.n; i += FRAME) {
        int n = a.n - i < FRAME ? (int)(a.n - i) : FRAME;
        float *planes[2] = {a.left + i, a.right + i};
        vg_soundtrack_fill(st, planes, i, n);
    }
    return a;
}

static audio render(const char *prompt, uint32_t seed, int seconds,
                    unsigned layers)
{
    vg_soundtrack *st = make(prompt, seed, seconds);
    audio a = play(st, layers);
    vg_soundtrack_free(st);
    return a;
}

static void drop(audio *a)
{
    free(a->left);
    free(a->right);
}

static bool same_samples(const audio *a, const audio *b)
{
    return a->n == b->n &&
           memcmp(a->left, b->left, (size_t)a->n * sizeof(float)) == 0 &&
           memcmp(a->right, b->right, (size_t)a->n * sizeof(float)) == 0;
}

static double peak(const float *s, int64_t first, int64_t end)
{
    double p = 0;
    for (int64_t i = first; i < end; i++)
        p = fmax(p, fabs(s[i]));
    return p;
}

/* A second-order section (RBJ cookbook), run in place. */
typedef struct biquad {
    double b0, b1, b2, a1, a2;
} biquad;

static biquad butterworth(double hz, bool high)
{
    double w = 2 * M_PI * hz / RATE, alpha = sin(w) / (2 * M_SQRT1_2);
    double c = cos(w), a0 = 1 + alpha;
    double b1 = high ? -(1 + c) : 1 - c;
    double b0 = high ? (1 + c) / 2 : (1 - c) / 2;
    biquad q = {b0 / a0, b1 / a0, b0 / a0, -2 * c / a0, (1 - alpha) / a0};
    return q;
}

/* Mean square of s[first, end) through a 300-3000 Hz band-pass. */
static double band_energy(const float *s, int64_t first, int64_t end)
{
    biquad stages[2] = {butterworth(300, true), butterworth(3000, false)};
    double x1[2] = {0}, x2[2] = {0}, y1[2] = {0}, y2[2] = {0}, sum = 0;
    for (int64_t i = first; i < end; i++) {
        double v = s[i];
        for (int k = 0; k < 2; k++) {
            const biquad *q = &stages[k];
            double y = q->b0 * v + q->b1 * x1[k] + q->b2 * x2[k] -
                       q->a1 * y1[k] - q->a2 * y2[k];
            x2[k] = x1[k];
            x1[k] = v;
            y2[k] = y1[k];
            y1[k] = y;
            v = y;
        }
        sum += v * v;
    }
    return end > first ? sum / (double)(end - first) : 0;
}

static char *long_prompt(size_t chars)
{
    static const char *words[] = {"golden", "light", "spills", "across",
                                  "quiet",  "hills", "and",    "rivers",
                                  "under",  "a",     "slow",   "sky"};
    char *s = malloc(chars + 1);
    assert_non_null(s);
    size_t len = 0;
    for (int i = 0; len < chars; i++) {
        const char *w = words[(i * 7) % 12];
        for (size_t k = 0; w[k] != '\0' && len < chars; k++)
            s[len++] = w[k];
        if (len < chars)
            s[len++] = i % 9 == 8 ? '.' : ' ';
    }
    s[len] = '\0';
    return s;
}

/* ---- length and level -------------------------------------------------- */

static void test_length_is_exactly_the_clip(void **state)
{
    (void)state;
    int seconds[] = {4, 12};
    for (int k = 0; k < 2; k++) {
        vg_soundtrack *st = make(english, 5, seconds[k]);
        vg_soundtrack_info info;
        vg_soundtrack_get_info(st, &info);
        assert_int_equal(info.total, (int64_t)seconds[k] * RATE);
        assert_true(info.speech_end <= info.total);

        /* Past the end is silence: nothing hangs over into the next
         * frame. */
        float l[8], r[8];
        float *planes[2] = {l, r};
        vg_soundtrack_fill(st, planes, info.total - 4, 8);
        for (int i = 4; i < 8; i++) {
            assert_true(l[i] == 0.0f);
            assert_true(r[i] == 0.0f);
        }
        vg_soundtrack_free(st);
    }
}

static void test_any_chunking_gives_the_same_samples(void **state)
{
    (void)state;
    vg_soundtrack *st = make(english, 11, 4);
    audio framed = play(st, VG_SOUNDTRACK_ALL);
    float *l = malloc((size_t)framed.n * sizeof(float));
    float *r = malloc((size_t)framed.n * sizeof(float));
    assert_non_null(l);
    assert_non_null(r);
    for (int64_t i = 0, step = 1; i < framed.n;
         i += step, step = step * 3 % 4099) {
        int n = framed.n - i < step ? (int)(framed.n - i) : (int)step;
        float *planes[2] = {l + i, r + i};
        vg_soundtrack_fill(st, planes, i, n);
    }
    assert_memory_equal(l, framed.left, (size_t)framed.n * sizeof(float));
    assert_memory_equal(r, framed.right, (size_t)framed.n * sizeof(float));
    free(l);
    free(r);
    drop(&framed);
    vg_soundtrack_free(st);
}

static void test_peak_stays_below_minus_1_dbfs(void **state)
{
    (void)state;
    char *wordy = long_prompt(600);
    const char *prompts[] = {english, chinese, arabic, russian, wordy, ""};
    for (size_t k = 0; k < sizeof(prompts) / sizeof(prompts[0]); k++) {
        audio a = render(prompts[k], (uint32_t)k * 977, 4, VG_SOUNDTRACK_ALL);
        for (int64_t i = 0; i < a.n; i++) {
            assert_true(isfinite(a.left[i]) && isfinite(a.right[i]));
            assert_true(fabsf(a.left[i]) <= 1.0f);
            assert_true(fabsf(a.right[i]) <= 1.0f);
        }
        double p = fmax(peak(a.left, 0, a.n), peak(a.right, 0, a.n));
        if (p > 0.9)
            fail_msg("prompt %zu peaks at %.3f", k, p);
        /* Not silent either: a soundtrack you can hear. */
        assert_true(p > 0.2);
        drop(&a);
    }
    free(wordy);
}

/* ---- speech ------------------------------------------------------------ */

/* The speech band while the prompt is spoken must stand well above the
 * bed: 6 dB above the bed alone (the same seed with nothing to say), and
 * 15 dB above the ducked bed actually playing under the voice. */
static void expect_speech(const char *prompt, const char *voice)
{
    vg_soundtrack *st = make(prompt, 21, 5);
    audio mix = play(st, VG_SOUNDTRACK_ALL);
    audio under = play(st, VG_SOUNDTRACK_BED);
    vg_soundtrack_free(st);
    audio bed = render("   ", 21, 5, VG_SOUNDTRACK_ALL);
    assert_string_equal(mix.voice, voice);
    assert_string_equal(bed.voice, "");

    /* The speech starts early and lasts a while, inside the clip. */
    int64_t first = mix.info.speech_first, end = mix.info.speech_end;
    assert_true(first > 0 && first < RATE / 2);
    assert_true(end - first > RATE / 2);
    assert_true(end <= mix.n);

    for (int side = 0; side < 2; side++) {
        /* Centred: both channels carry the speech. */
        const float *m = side == 0 ? mix.left : mix.right;
        const float *b = side == 0 ? bed.left : bed.right;
        const float *u = side == 0 ? under.left : under.right;
        double spoken = band_energy(m, first, end);
        double alone = band_energy(b, first, end);
        double ducked = band_energy(u, first, end);
        if (spoken < 4 * alone || spoken < 30 * ducked)
            fail_msg("%s: speech band %.2e is not clearly above the bed "
                     "(%.2e alone, %.2e ducked)",
                     voice, spoken, alone, ducked);
    }
    drop(&mix);
    drop(&under);
    drop(&bed);
}

static void test_english_prompt_is_spoken(void **state)
{
    (void)state;
    expect_speech(english, "en");
}

static void test_chinese_prompt_is_spoken_in_mandarin(void **state)
{
    (void)state;
    expect_speech(chinese, "cmn");
}

static void test_arabic_prompt_is_spoken_in_arabic(void **state)
{
    (void)state;
    expect_speech(arabic, "ar");
}

static void test_russian_prompt_is_spoken_in_russian(void **state)
{
    (void)state;
    expect_speech(russian, "ru");
}

static void test_voice_follows_the_dominant_script(void **state)
{
    (void)state;
    static const struct {
        const char *text, *voice;
    } cases[] = {
        {"hello world", "en"},
        {"héllo wörld", "en"},
        {"你好，世界", "cmn"},
        {"こんにちは、世界", "ja"},
        {"猫がいる", "ja"},
        {"안녕하세요 세계", "ko"},
        {"مرحبا بالعالم", "ar"},
        {"שלום עולם", "he"},
        {"привет мир", "ru"},
        {"Καλημέρα κόσμε", "el"},
        {"नमस्ते दुनिया", "hi"},
        {"สวัสดีครับ", "th"},
        {"a red fox, 4k, cinematic", "en"},
        {"a cat called Кот", "en"},
        {"кошка по имени Tom", "ru"},
        {"2024", "en"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v = vg_speech_voice_for(cases[i].text);
        if (v == NULL || strcmp(v, cases[i].voice) != 0)
            fail_msg("\"%s\": voice %s, expected %s", cases[i].text,
                     v != NULL ? v : "(none)", cases[i].voice);
    }
    /* Nothing to say: no voice at all. */
    const char *silent[] = {"", "   \n\t", "✨🚀🎬", "#*@ ...", NULL};
    for (size_t i = 0; silent[i] != NULL; i++)
        assert_null(vg_speech_voice_for(silent[i]));
}

static void test_emoji_are_not_read_out(void **state)
{
    (void)state;
    vg_soundtrack *plain = make("a cat", 3, 4);
    vg_soundtrack *sparkly =
        make("a cat \xe2\x9c\xa8\xe2\x9c\xa8 \xf0\x9f\x9a\x80", 3, 4);
    vg_soundtrack_info a, b;
    vg_soundtrack_get_info(plain, &a);
    vg_soundtrack_get_info(sparkly, &b);
    assert_int_equal(a.speech_end - a.speech_first,
                     b.speech_end - b.speech_first);
    vg_soundtrack_free(plain);
    vg_soundtrack_free(sparkly);

    /* Only emoji: the bed alone, no voice. */
    vg_soundtrack *st = make("\xf0\x9f\x8c\x8a\xf0\x9f\x8c\x85", 3, 4);
    vg_soundtrack_info info;
    vg_soundtrack_get_info(st, &info);
    assert_null(info.voice);
    assert_int_equal(info.speech_end, 0);
    vg_soundtrack_free(st);
}

static void test_long_prompt_fits_and_fades_out(void **state)
{
    (void)state;
    char *prompt = long_prompt(2000);
    vg_soundtrack *st = make(prompt, 8, 4);
    audio mix = play(st, VG_SOUNDTRACK_ALL);
    audio speech = play(st, VG_SOUNDTRACK_SPEECH);
    vg_soundtrack_free(st);
    free(prompt);

    assert_int_equal(mix.n, 4 * RATE);
    assert_true(mix.info.truncated);
    assert_true(mix.info.words_per_minute > 175); /* sped up first */
    assert_true(mix.info.speech_end <= mix.n);
    /* It fills most of the clip. */
    assert_true(mix.info.speech_end - mix.info.speech_first > 3 * RATE);

    /* No click where the speech was cut: its last 10 ms are faded... */
    int64_t end = mix.info.speech_end, ms10 = RATE / 100;
    assert_true(peak(speech.left, end - ms10, end) < 0.05);
    assert_true(peak(speech.left, mix.info.speech_first, end) > 0.5);
    /* ...and the clip itself ends in silence. */
    assert_true(peak(mix.left, mix.n - ms10, mix.n) < 0.01);
    assert_true(peak(mix.right, mix.n - ms10, mix.n) < 0.01);
    drop(&mix);
    drop(&speech);
}

static void test_speech_that_fits_keeps_the_normal_rate(void **state)
{
    (void)state;
    vg_soundtrack *st = make("a quiet lake", 2, 12);
    vg_soundtrack_info info;
    vg_soundtrack_get_info(st, &info);
    assert_int_equal(info.words_per_minute, 175);
    assert_false(info.truncated);
    vg_soundtrack_free(st);
}

/* ---- determinism ------------------------------------------------------- */

static void test_same_inputs_give_identical_samples(void **state)
{
    (void)state;
    /* Different texts in between: espeak-ng's leftover state must not
     * leak into the next utterance. */
    audio a = render(english, 7, 4, VG_SOUNDTRACK_ALL);
    audio other = render(russian, 7, 4, VG_SOUNDTRACK_ALL);
    audio b = render(english, 7, 4, VG_SOUNDTRACK_ALL);
    assert_true(same_samples(&a, &b));
    assert_false(same_samples(&a, &other));
    drop(&a);
    drop(&b);
    drop(&other);
}

static void test_different_seed_gives_a_different_bed(void **state)
{
    (void)state;
    vg_soundtrack *one = make(english, 1, 4);
    vg_soundtrack *two = make(english, 2, 4);
    audio bed1 = play(one, VG_SOUNDTRACK_BED);
    audio bed2 = play(two, VG_SOUNDTRACK_BED);
    audio speech1 = play(one, VG_SOUNDTRACK_SPEECH);
    audio speech2 = play(two, VG_SOUNDTRACK_SPEECH);
    assert_false(same_samples(&bed1, &bed2));
    /* The voice reads the prompt the same way whatever the seed. */
    assert_true(same_samples(&speech1, &speech2));
    drop(&bed1);
    drop(&bed2);
    drop(&speech1);
    drop(&speech2);
    vg_soundtrack_free(one);
    vg_soundtrack_free(two);
}

typedef struct job {
    const char *prompt;
    uint32_t seed;
    audio result;
} job;

static void *render_job(void *arg)
{
    job *j = arg;
    j->result = render(j->prompt, j->seed, 4, VG_SOUNDTRACK_ALL);
    return NULL;
}

static void test_concurrent_soundtracks_match_sequential_ones(void **state)
{
    (void)state;
    job jobs[4] = {{english, 1, {0}},
                   {chinese, 2, {0}},
                   {arabic, 3, {0}},
                   {russian, 4, {0}}};
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, render_job, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 4; i++) {
        audio alone =
            render(jobs[i].prompt, jobs[i].seed, 4, VG_SOUNDTRACK_ALL);
        assert_string_equal(jobs[i].result.voice, alone.voice);
        assert_true(same_samples(&alone, &jobs[i].result));
        drop(&alone);
        drop(&jobs[i].result);
    }
}

/* ---- cancellation and errors ------------------------------------------- */

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) +
           (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

typedef struct canceller {
    atomic_int *flag;
    int after_ms;
} canceller;

static void *cancel_later(void *arg)
{
    canceller *c = arg;
    struct timespec pause = {0, (long)c->after_ms * 1000000};
    nanosleep(&pause, NULL);
    atomic_store(c->flag, 1);
    return NULL;
}

static void test_cancel_stops_early_with_an_error(void **state)
{
    (void)state;
    /* Already cancelled: nothing is started. */
    atomic_int cancel = 1;
    vg_error err = {0};
    assert_null(vg_soundtrack_new(english, 1, 4, RATE, 2, &cancel, &err));
    assert_int_equal(err.status, 500);
    assert_string_equal(err.code, "cancelled");

    /* Cancelled mid-synthesis: a minute of speech to make would take a
     * while; the flag stops it within a poll interval or two. */
    char *prompt = long_prompt(20000);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_soundtrack *full = make(prompt, 1, 3600);
    double full_time = seconds_since(&start);
    vg_soundtrack_free(full);

    atomic_store(&cancel, 0);
    canceller c = {&cancel, 5};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, cancel_later, &c), 0);
    memset(&err, 0, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &start);
    vg_soundtrack *st =
        vg_soundtrack_new(prompt, 1, 3600, RATE, 2, &cancel, &err);
    double cancelled_time = seconds_since(&start);
    pthread_join(thread, NULL);
    free(prompt);
    if (st != NULL)
        fail_msg("not cancelled: the synthesis took %.3f s, uncancelled "
                 "%.3f s",
                 cancelled_time, full_time);
    assert_string_equal(err.code, "cancelled");
    assert_true(cancelled_time < full_time);
    assert_true(cancelled_time < 0.5);
}

static void test_bad_format_is_render_failed(void **state)
{
    (void)state;
    vg_error err = {0};
    assert_null(vg_soundtrack_new(english, 1, 0, RATE, 2, NULL, &err));
    assert_string_equal(err.code, "render_failed");
    assert_null(vg_soundtrack_new(english, 1, 4, RATE, 3, NULL, &err));
    assert_string_equal(err.code, "render_failed");
    assert_null(vg_soundtrack_new(english, 1, 4, 1000, 2, NULL, &err));
    assert_string_equal(err.code, "render_failed");
}

static void test_mono_is_the_mix_of_both_sides(void **state)
{
    (void)state;
    vg_error err = {0};
    vg_soundtrack *mono =
        vg_soundtrack_new(english, 4, 4, RATE, 1, NULL, &err);
    assert_non_null(mono);
    vg_soundtrack_info info;
    vg_soundtrack_get_info(mono, &info);
    float *s = malloc((size_t)info.total * sizeof(float));
    assert_non_null(s);
    for (int64_t i = 0; i < info.total; i += FRAME) {
        float *planes[1] = {s + i};
        vg_soundtrack_fill(
            mono, planes, i,
            (int)(info.total - i < FRAME ? info.total - i : FRAME));
    }
    assert_non_null(info.voice);
    audio stereo = render(english, 4, 4, VG_SOUNDTRACK_ALL);
    for (int64_t i = 0; i < info.total; i++) {
        double mid = ((double)stereo.left[i] + stereo.right[i]) / 2;
        if (fabs(s[i] - mid) > 1e-6)
            fail_msg("sample %lld: mono %g, stereo mid %g", (long long)i, s[i],
                     mid);
    }
    drop(&stereo);
    free(s);
    vg_soundtrack_free(mono);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_is_exactly_the_clip),
        cmocka_unit_test(test_any_chunking_gives_the_same_samples),
        cmocka_unit_test(test_peak_stays_below_minus_1_dbfs),
        cmocka_unit_test(test_english_prompt_is_spoken),
        cmocka_unit_test(test_chinese_prompt_is_spoken_in_mandarin),
        cmocka_unit_test(test_arabic_prompt_is_spoken_in_arabic),
        cmocka_unit_test(test_russian_prompt_is_spoken_in_russian),
        cmocka_unit_test(test_voice_follows_the_dominant_script),
        cmocka_unit_test(test_emoji_are_not_read_out),
        cmocka_unit_test(test_long_prompt_fits_and_fades_out),
        cmocka_unit_test(test_speech_that_fits_keeps_the_normal_rate),
        cmocka_unit_test(test_same_inputs_give_identical_samples),
        cmocka_unit_test(test_different_seed_gives_a_different_bed),
        cmocka_unit_test(test_concurrent_soundtracks_match_sequential_ones),
        cmocka_unit_test(test_cancel_stops_early_with_an_error),
        cmocka_unit_test(test_bad_format_is_render_failed),
        cmocka_unit_test(test_mono_is_the_mix_of_both_sides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
