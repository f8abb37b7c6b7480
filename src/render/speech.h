/*
 * speech.h - the prompt read aloud by espeak-ng, for the soundtrack.
 *
 * The voice follows the prompt's dominant script (Han speaks Mandarin,
 * Cyrillic Russian, Arabic Arabic...; Latin and anything espeak-ng has no
 * voice for speak English). The speaking rate rises as far as a sane
 * maximum to fit the time given; past that the speech stops at a word
 * boundary near the end of that time and fades out.
 *
 * Each synthesis runs in a short-lived child process: espeak-ng keeps
 * synthesis state in globals (pitch flutter, gain control, echo) that no
 * API resets, so a second utterance in the same process comes out
 * different from the first. A fresh process per utterance is the only way
 * to give the same samples for the same text every time, and it keeps
 * espeak-ng's non-thread-safe globals away from the render workers.
 */
#ifndef VG_SPEECH_H
#define VG_SPEECH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vg_speech {
    float *samples; /* mono, peak exactly 1.0; NULL when nothing is said */
    int64_t n;      /* samples at the rate asked for */
    char voice[16]; /* the espeak-ng voice that spoke, "" when silent */
    int words_per_minute;
    bool truncated; /* did not fit: cut at a word boundary, faded out */
} vg_speech;

/* The espeak-ng voice the text would be spoken with, or NULL when it has
 * nothing to say (empty, blank, only symbols or emoji). */
const char *vg_speech_voice_for(const char *text);

/* Speaks `text` into at most max_seconds of audio at sample_rate. A text
 * with nothing to say gives an empty *out and returns 0. `cancel` (may be
 * NULL) is watched while the synthesis runs: non-zero stops it within a
 * few tens of milliseconds with error code "cancelled". Other failures are
 * 500 "render_failed". Free *out with vg_speech_free() either way. */
int vg_speech_synthesize(const char *text, double max_seconds, int sample_rate,
                         atomic_int *cancel, vg_speech *out, vg_error *err);

void vg_speech_free(vg_speech *speech);

#endif
