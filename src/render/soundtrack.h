/*
 * soundtrack.h - the local renderer's audio: the prompt spoken over a
 * music bed generated from the seed, exactly as long as the clip.
 *
 * The speech (speech.h) is made up front, since it must be fitted to the
 * clip; the bed is computed on demand from the sample index alone, so
 * memory stays small however long the clip is and any range can be
 * filled in any order with the same result. Same prompt, seed, duration
 * and format give the same samples, bit for bit.
 *
 * Mixing rules: the bed fades in and out at the clip's edges and ducks
 * (to a quarter) under the speech; the speech is evened out by a
 * compressor and centred; the levels are set so that the sum cannot
 * exceed 0.74 (-2.6 dBFS), and a soft limiter above 0.8 would keep any
 * sample below 0.89 (-1 dBFS) without clipping, should that ever change.
 */
#ifndef VG_SOUNDTRACK_H
#define VG_SOUNDTRACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vg_soundtrack vg_soundtrack;

/* Layers of the mix, for vg_soundtrack_set_layers(). */
#define VG_SOUNDTRACK_SPEECH 1u
#define VG_SOUNDTRACK_BED 2u
#define VG_SOUNDTRACK_ALL (VG_SOUNDTRACK_SPEECH | VG_SOUNDTRACK_BED)

/* What was made, for logs and tests. */
typedef struct vg_soundtrack_info {
    int64_t total;     /* samples per channel: duration * sample_rate */
    const char *voice; /* espeak-ng voice, or NULL when nothing is said */
    int words_per_minute;
    bool truncated;       /* the speech did not fit and was cut short */
    int64_t speech_first; /* where the speech sits, in samples; */
    int64_t speech_end;   /* both 0 when nothing is said */
} vg_soundtrack_info;

/* Prepares the soundtrack of a clip of duration_s seconds (1 to 3600)
 * at sample_rate (8000 to 192000) with 1 or 2 channels. The speech is
 * synthesized here (tens of milliseconds); `cancel` (may be NULL) stops
 * that early with error code "cancelled". Other failures are 500
 * "render_failed". */
vg_soundtrack *vg_soundtrack_new(const char *prompt, uint32_t seed,
                                 int duration_s, int sample_rate, int channels,
                                 atomic_int *cancel, vg_error *err);

/* Writes samples [first, first + n) into planes[0..channels-1] (planar
 * float, as the AAC encoder takes them). Past the end is silence. */
void vg_soundtrack_fill(const vg_soundtrack *st, float *const *planes,
                        int64_t first, int n);

/* Which layers fill() mixes: VG_SOUNDTRACK_ALL unless changed. Listening
 * to one layer alone is for tests; levels and limiting stay the same. */
void vg_soundtrack_set_layers(vg_soundtrack *st, unsigned layers);

void vg_soundtrack_get_info(const vg_soundtrack *st, vg_soundtrack_info *info);

void vg_soundtrack_free(vg_soundtrack *st);

#endif
