/*
 * soundtrack.c - the prompt spoken over a seed-generated music bed (see
 * soundtrack.h).
 *
 * The bed is a four-chord progression in a key, mode and tempo picked by
 * the seed: soft pads (three partials, detuned a little between the
 * channels for width, swelling slowly), a sine bass on the chord's root
 * and a gentle plucked arpeggio in eighth notes. Every value is a pure
 * function of the sample index, which is what lets fill() be called on
 * any range and still give the same samples.
 *
 * Level budget (a bound, not a typical value): the bed's partials add up
 * to at most BED_PEAK, the speech peaks at SPEECH_PEAK, and the bed is
 * ducked to DUCK times its level from before the first word to after the
 * last, so a sum never exceeds max(BED_PEAK, SPEECH_PEAK + DUCK *
 * BED_PEAK) = 0.74. The limiter above LIMIT_KNEE is a safety net that
 * this budget never reaches.
 */
#include "render/soundtrack.h"
#include "render/random.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "render/speech.h"

#define SPEECH_PEAK 0.65
#define BED_PEAK 0.36
#define DUCK 0.25
#define LIMIT_KNEE 0.8
#define LIMIT_CEILING 0.89

/* Speech timing: a breath before the first word and after the last; the
 * whole is capped so a long clip's speech buffer stays small (60 s of
 * mono floats at 48 kHz is 11 MB). */
#define LEAD_SECONDS 0.25
#define TAIL_SECONDS 0.25
#define MAX_SPEECH_SECONDS 60.0
#define DUCK_IN_SECONDS 0.3
#define DUCK_OUT_SECONDS 0.5
/* The bed's own fades at the clip's edges, at most a quarter each. */
#define FADE_IN_SECONDS 0.6
#define FADE_OUT_SECONDS 1.0

#define MAX_DURATION 3600

/* Relative levels of the bed's parts, and their partials. */
#define PAD_GAIN 1.0
#define BASS_GAIN 1.1
#define ARP_GAIN 0.5
static const double pad_partials[3] = {1.0, 0.22, 0.08};
static const double bass_partials[2] = {1.0, 0.18};
static const double arp_partials[2] = {1.0, 0.25};

#define SINE_SIZE 4096

typedef struct chord {
    double pad[3]; /* cycles per sample */
    double bass;
    double arp[4]; /* the triad an octave up, and its root on top */
} chord;

typedef struct bed {
    chord chords[4]; /* the progression, repeating */
    double bar;      /* samples per chord */
    double step;     /* samples per arpeggio note */
    double crossfade;
    int pattern[8]; /* arpeggio: indices into chord.arp */
    double detune;  /* left x (1 - detune), right x (1 + detune) */
    double swell_rate, swell_phase;
    double attack, decay, release; /* arpeggio envelope, in samples */
    double scale;                  /* makes the bound BED_PEAK */
    int64_t fade_in, fade_out;
} bed;

struct vg_soundtrack {
    int rate, channels;
    int64_t total;
    unsigned layers;
    bed bed;
    vg_speech speech;
    int64_t speech_first, speech_end;
    int64_t duck_in, duck_out;
};

static pthread_once_t sine_once = PTHREAD_ONCE_INIT;
static float sine_table[SINE_SIZE + 1];

static void fill_sine_table(void)
{
    for (int i = 0; i <= SINE_SIZE; i++)
        sine_table[i] = (float)sin(2 * M_PI * i / SINE_SIZE);
}

/* sin(2 pi phase) from the table: phase in cycles. Truncation and a
 * correction for negatives is floor() without the library call. Accurate
 * to about 3e-7, far below what AAC keeps, and several times faster than
 * sin(). */
static inline double sine(double phase)
{
    double whole = (double)(int64_t)phase;
    if (whole > phase)
        whole -= 1;
    double x = (phase - whole) * SINE_SIZE;
    int i = (int)x;
    if (i >= SINE_SIZE) /* a tiny negative phase rounds up to 1 cycle */
        i = SINE_SIZE - 1;
    double f = x - i;
    return sine_table[i] + f * (sine_table[i + 1] - sine_table[i]);
}

static double uniform(uint64_t *state)
{
    return (double)(vg_random_next(state) >> 11) / 9007199254740992.0;
}

static double cycles_per_sample(int midi, int rate)
{
    return 440.0 * pow(2.0, (midi - 69) / 12.0) / rate;
}

/* The MIDI note of pitch class `note` in [low, low + 12). */
static int place(int note, int low)
{
    while (note < low)
        note += 12;
    while (note >= low + 12)
        note -= 12;
    return note;
}

static void compose_bed(bed *b, uint32_t seed, int rate, int64_t total)
{
    static const int major[7] = {0, 2, 4, 5, 7, 9, 11};
    static const int minor[7] = {0, 2, 3, 5, 7, 8, 10};
    /* Scale degrees, from 0: I-V-vi-IV and friends. */
    static const int major_progressions[4][4] = {
        {0, 4, 5, 3}, {0, 5, 3, 4}, {3, 0, 4, 5}, {0, 3, 5, 4}};
    static const int minor_progressions[4][4] = {
        {0, 5, 2, 6}, {0, 3, 5, 4}, {0, 6, 5, 6}, {0, 5, 3, 4}};
    static const int patterns[4][8] = {{0, 1, 2, 3, 0, 1, 2, 3},
                                       {0, 1, 2, 3, 3, 2, 1, 0},
                                       {0, 2, 1, 3, 0, 2, 1, 3},
                                       {0, 2, 0, 3, 0, 2, 0, 1}};

    uint64_t state = 0x5eed0000u ^ seed;
    bool is_minor = vg_random_next(&state) & 1;
    int tonic = 48 + (int)(vg_random_next(&state) % 12); /* C3 to B3 */
    const int *scale = is_minor ? minor : major;
    const int *degrees = is_minor
                             ? minor_progressions[vg_random_next(&state) % 4]
                             : major_progressions[vg_random_next(&state) % 4];
    double bpm = 64 + (double)(vg_random_next(&state) % 21);
    memcpy(b->pattern, patterns[vg_random_next(&state) % 4],
           sizeof(b->pattern));
    b->detune = 0.0008 + 0.0008 * uniform(&state);
    b->swell_rate = (0.07 + 0.1 * uniform(&state)) / rate;
    b->swell_phase = uniform(&state);

    for (int c = 0; c < 4; c++) {
        int triad[3];
        for (int k = 0; k < 3; k++) {
            int d = degrees[c] + 2 * k;
            triad[k] = tonic + scale[d % 7] + 12 * (d / 7);
        }
        chord *ch = &b->chords[c];
        int arp[3];
        for (int k = 0; k < 3; k++) {
            ch->pad[k] = cycles_per_sample(place(triad[k], 50), rate);
            arp[k] = place(triad[k], 62);
        }
        ch->bass = cycles_per_sample(place(triad[0], 36), rate);
        /* Ascending, then the lowest an octave up. */
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++)
                if (arp[j] < arp[i]) {
                    int t = arp[i];
                    arp[i] = arp[j];
                    arp[j] = t;
                }
        for (int k = 0; k < 3; k++)
            ch->arp[k] = cycles_per_sample(arp[k], rate);
        ch->arp[3] = cycles_per_sample(arp[0] + 12, rate);
    }

    double beat = 60.0 / bpm * rate;
    b->bar = 4 * beat;
    b->step = beat / 2;
    b->crossfade = fmin(0.8 * rate, b->bar / 3);
    b->attack = 0.004 * rate;
    b->decay = 0.3 * rate;
    b->release = 0.025 * rate;

    double bound = 0;
    for (int k = 0; k < 3; k++)
        bound += PAD_GAIN * pad_partials[k] * 3;
    bound += BASS_GAIN * (bass_partials[0] + bass_partials[1]);
    bound += ARP_GAIN * (arp_partials[0] + arp_partials[1]);
    b->scale = BED_PEAK / bound;

    int64_t quarter = total / 4;
    b->fade_in = (int64_t)(FADE_IN_SECONDS * rate);
    b->fade_out = (int64_t)(FADE_OUT_SECONDS * rate);
    if (b->fade_in > quarter)
        b->fade_in = quarter;
    if (b->fade_out > quarter)
        b->fade_out = quarter;
}

/* One chord's pads (both channels) and bass at sample i. */
static void play_chord(const bed *b, const chord *c, double i, double swell_l,
                       double swell_r, double *left, double *right)
{
    double l = 0, r = 0;
    for (int k = 0; k < 3; k++) {
        double phase_l = c->pad[k] * (1 - b->detune) * i;
        double phase_r = c->pad[k] * (1 + b->detune) * i + 0.25 * k;
        for (int p = 0; p < 3; p++) {
            l += pad_partials[p] * sine((p + 1) * phase_l);
            r += pad_partials[p] * sine((p + 1) * phase_r);
        }
    }
    double bass = 0;
    for (int p = 0; p < 2; p++)
        bass += bass_partials[p] * sine((p + 1) * c->bass * i);
    *left = PAD_GAIN * swell_l * l + BASS_GAIN * bass;
    *right = PAD_GAIN * swell_r * r + BASS_GAIN * bass;
}

/* The arpeggio note sounding at sample i. */
static void play_arpeggio(const bed *b, int64_t i, double *left, double *right)
{
    int64_t j = (int64_t)floor(i / b->step);
    double u = fmax(0, i - j * b->step);    /* samples since the note began */
    const chord *c = &b->chords[j / 8 % 4]; /* eight notes a bar */
    double f = c->arp[b->pattern[j % 8]];
    double decay = exp(-u / b->decay);
    double env = decay;
    if (u < 12 * b->attack) /* beyond that the attack is complete */
        env *= 1 - exp(-u / b->attack);
    double to_end = b->step - u;
    if (to_end < b->release)
        env *= 0.5 - 0.5 * cos(M_PI * to_end / b->release);
    double v = arp_partials[0] * sine(f * u) +
               arp_partials[1] * decay * sine(2 * f * u);
    v *= ARP_GAIN * env * (j % 2 == 0 ? 1.0 : 0.75);
    /* Alternate sides a little, for width. */
    *left = v * (j % 2 == 0 ? 1.0 : 0.7);
    *right = v * (j % 2 == 0 ? 0.7 : 1.0);
}

/* sin^2 ramp from 0 (x = 0) to 1 (x = 1): smooth at both ends. */
static double ramp(double x)
{
    double s = sin(M_PI / 2 * x);
    return s * s;
}

static void play_bed(const bed *b, int64_t index, int64_t total, double *left,
                     double *right)
{
    double i = (double)index;
    int64_t k = (int64_t)floor(i / b->bar);
    double u = i - k * b->bar;
    /* Crossfade centred on the chord change; the weights add up to 1. */
    int64_t from = k, to = k;
    double w = 1; /* weight of `to` */
    if (u < b->crossfade / 2 && k > 0) {
        from = k - 1;
        w = 0.5 + 0.5 * sin(M_PI * u / b->crossfade);
    } else if (u > b->bar - b->crossfade / 2) {
        to = k + 1;
        w = 0.5 + 0.5 * sin(M_PI * (u - b->bar) / b->crossfade);
    }
    double swell = b->swell_rate * i + b->swell_phase;
    double swell_l = 0.85 + 0.15 * sine(swell);
    double swell_r = 0.85 + 0.15 * sine(swell + 0.25);

    double l, r, l2 = 0, r2 = 0;
    play_chord(b, &b->chords[to % 4], i, swell_l, swell_r, &l, &r);
    if (from != to)
        play_chord(b, &b->chords[from % 4], i, swell_l, swell_r, &l2, &r2);
    l = w * l + (1 - w) * l2;
    r = w * r + (1 - w) * r2;
    double al, ar;
    play_arpeggio(b, index, &al, &ar);
    l += al;
    r += ar;

    double gain = b->scale;
    if (index < b->fade_in)
        gain *= ramp((double)index / b->fade_in);
    int64_t left_over = total - 1 - index;
    if (left_over < b->fade_out)
        gain *= ramp((double)left_over / b->fade_out);
    *left = gain * l;
    *right = gain * r;
}

/* The bed's gain at sample i: DUCK from before the speech to after it. */
static double duck_gain(const vg_soundtrack *st, int64_t i)
{
    if (st->speech_end <= st->speech_first)
        return 1;
    double under; /* 1 while ducked */
    if (i >= st->speech_first && i < st->speech_end)
        under = 1;
    else if (i < st->speech_first && i >= st->speech_first - st->duck_in)
        under = ramp(1 - (double)(st->speech_first - i) / st->duck_in);
    else if (i >= st->speech_end && i < st->speech_end + st->duck_out)
        under = ramp(1 - (double)(i - st->speech_end) / st->duck_out);
    else
        under = 0;
    return 1 - (1 - DUCK) * under;
}

/* Identity up to the knee, then a tanh curve that never reaches the
 * ceiling: no sample is ever clipped flat. */
static float limit(double x)
{
    double a = fabs(x);
    if (a <= LIMIT_KNEE)
        return (float)x;
    double room = LIMIT_CEILING - LIMIT_KNEE;
    return (float)copysign(LIMIT_KNEE + room * tanh((a - LIMIT_KNEE) / room),
                           x);
}

vg_soundtrack *vg_soundtrack_new(const char *prompt, uint32_t seed,
                                 int duration_s, int sample_rate, int channels,
                                 atomic_int *cancel, vg_error *err)
{
    if (duration_s < 1 || duration_s > MAX_DURATION || sample_rate < 8000 ||
        sample_rate > 192000 || channels < 1 || channels > 2) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "invalid soundtrack: %d s, %d Hz, %d channels",
                     duration_s, sample_rate, channels);
        return NULL;
    }
    pthread_once(&sine_once, fill_sine_table);
    vg_soundtrack *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        return NULL;
    }
    st->rate = sample_rate;
    st->channels = channels;
    st->total = (int64_t)duration_s * sample_rate;
    st->layers = VG_SOUNDTRACK_ALL;
    compose_bed(&st->bed, seed, sample_rate, st->total);

    double lead = fmin(LEAD_SECONDS, 0.1 * duration_s);
    double tail = fmin(TAIL_SECONDS, 0.1 * duration_s);
    double window = fmin(duration_s - lead - tail, MAX_SPEECH_SECONDS);
    if (vg_speech_synthesize(prompt, window, sample_rate, cancel, &st->speech,
                             err) < 0) {
        vg_soundtrack_free(st);
        return NULL;
    }
    if (st->speech.n > 0) {
        st->speech_first = (int64_t)(lead * sample_rate);
        st->speech_end = st->speech_first + st->speech.n;
        if (st->speech_end > st->total) { /* cannot happen: belt and braces */
            st->speech_end = st->total;
            st->speech.n = st->speech_end - st->speech_first;
        }
    }
    st->duck_in = (int64_t)(DUCK_IN_SECONDS * sample_rate);
    st->duck_out = (int64_t)(DUCK_OUT_SECONDS * sample_rate);
    return st;
}

void vg_soundtrack_fill(const vg_soundtrack *st, float *const *planes,
                        int64_t first, int n)
{
    bool bed_on = st->layers & VG_SOUNDTRACK_BED;
    bool speech_on = st->layers & VG_SOUNDTRACK_SPEECH;
    for (int k = 0; k < n; k++) {
        int64_t i = first + k;
        double left = 0, right = 0;
        if (i < 0 || i >= st->total) {
            for (int c = 0; c < st->channels; c++)
                planes[c][k] = 0;
            continue;
        }
        if (bed_on) {
            play_bed(&st->bed, i, st->total, &left, &right);
            double duck = duck_gain(st, i);
            left *= duck;
            right *= duck;
        }
        if (speech_on && i >= st->speech_first && i < st->speech_end) {
            double voice =
                SPEECH_PEAK * st->speech.samples[i - st->speech_first];
            left += voice;
            right += voice;
        }
        if (st->channels == 1) {
            planes[0][k] = limit((left + right) / 2);
        } else {
            planes[0][k] = limit(left);
            planes[1][k] = limit(right);
        }
    }
}

void vg_soundtrack_set_layers(vg_soundtrack *st, unsigned layers)
{
    st->layers = layers & VG_SOUNDTRACK_ALL;
}

void vg_soundtrack_get_info(const vg_soundtrack *st, vg_soundtrack_info *info)
{
    info->total = st->total;
    info->voice = st->speech.n > 0 ? st->speech.voice : NULL;
    info->words_per_minute = st->speech.words_per_minute;
    info->truncated = st->speech.truncated;
    info->speech_first = st->speech_first;
    info->speech_end = st->speech_end;
}

void vg_soundtrack_free(vg_soundtrack *st)
{
    if (st == NULL)
        return;
    vg_speech_free(&st->speech);
    free(st);
}
