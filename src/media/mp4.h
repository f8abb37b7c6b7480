/*
 * mp4.h - checks and remuxes the MP4 files that upstream providers return.
 *
 * A finished video downloaded from a provider is untrusted input: it may
 * be an error page, a truncated download or another container entirely.
 * vg_mp4_inspect decides whether it is an MP4 with video worth storing
 * (and says what it holds); vg_mp4_strip_audio drops its audio tracks
 * when the client asked for none, by copying packets (no re-encoding, so
 * no quality loss and little CPU) into a fast-start MP4.
 */
#ifndef VG_MP4_H
#define VG_MP4_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct vg_mp4_info {
    int width, height;    /* of the first video stream */
    int64_t duration_ms;  /* of the first video stream (else the file) */
    int64_t video_frames; /* samples of the first video stream; 0 unknown */
    bool has_audio;       /* at least one audio stream */
    char video_codec[32]; /* FFmpeg's codec name: "h264", "hevc", ... */
} vg_mp4_info;

/* Opens path and requires an MP4/MOV family container (what FFmpeg calls
 * "mov,mp4,m4a,3gp,3g2,mj2") with at least one video stream whose
 * samples all lie inside the file. Fills *info and returns 0, or fails
 * with 502 "upstream_bad_video" saying why (without the path: clients may
 * see the message). */
int vg_mp4_inspect(const char *path, vg_mp4_info *info, vg_error *err);

/* Writes to out a copy of in with only its video streams, packets copied
 * as they are, with the index first (movflags +faststart) so players can
 * start before the whole file has arrived. The copy is written beside out
 * and renamed into place, so on failure (500, saying why) out is left as
 * it was and no partial file remains. in and out may be the same path. */
int vg_mp4_strip_audio(const char *in, const char *out, vg_error *err);

#endif
