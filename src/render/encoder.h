/*
 * encoder.h - writes pictures and sound into a browser-playable MP4.
 *
 * The renderer draws; this file owns everything FFmpeg needs to turn the
 * drawings into H.264 (libx264) and AAC, muxed with the moov atom first so
 * a browser can start playing before the whole file has arrived. It keeps
 * the sample counts exact: the caller says how many video frames there
 * will be, and the audio track is cut to exactly that length.
 *
 * Use: open; for each picture vg_encoder_write_video(), then fill and
 * write audio frames while vg_encoder_audio_frame() hands one out;
 * finally vg_encoder_finish() and vg_encoder_free().
 */
#ifndef VG_ENCODER_H
#define VG_ENCODER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

struct AVFrame;

typedef struct vg_encoder_config {
    int width, height; /* even */
    int fps;
    int frames;      /* exact number of video frames that will be written */
    bool audio;      /* add an AAC track as long as the video */
    int sample_rate; /* audio only, e.g. 48000 */
    int channels;    /* audio only, 1 or 2 */
} vg_encoder_config;

typedef struct vg_encoder vg_encoder;

/* Creates the MP4 file at path (any name: the format is forced to MP4).
 * Returns NULL and fills err (500 "render_failed") on failure. */
vg_encoder *vg_encoder_open(const char *path, const vg_encoder_config *config,
                            vg_error *err);

/* Encodes the next video frame: a YUV420P picture of the configured size
 * (BT.709, limited range). Its pts is set here; the encoder copies what it
 * keeps, so the caller may draw into the picture again afterwards. */
int vg_encoder_write_video(vg_encoder *enc, struct AVFrame *picture,
                           vg_error *err);

/* The next planar-float audio frame to fill, or NULL when the audio has
 * caught up with the video written so far (always NULL without audio).
 * *first_sample is the index of its first sample since the start; its
 * nb_samples may be smaller than usual for the very last frame. */
struct AVFrame *vg_encoder_audio_frame(vg_encoder *enc, int64_t *first_sample,
                                       vg_error *err);
/* Encodes the frame last returned by vg_encoder_audio_frame(). */
int vg_encoder_write_audio(vg_encoder *enc, vg_error *err);

/* Flushes the encoders and completes the file. All frames must have been
 * written. */
int vg_encoder_finish(vg_encoder *enc, vg_error *err);
/* Releases everything; the file stays (possibly incomplete) on disk. */
void vg_encoder_free(vg_encoder *enc);

#endif
