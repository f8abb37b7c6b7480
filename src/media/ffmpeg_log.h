/*
 * ffmpeg_log.h - sends FFmpeg's (libav's) log into vidgate's log.
 *
 * libav prints to stderr by default (x264's statistics, demuxer and
 * codec chatter), which would break the one-JSON-object-per-line log.
 * Both users of libav install the same forwarding: the renderer, and the
 * MP4 checks on upstream videos (a gateway that only proxies may never
 * render). Errors go through vg_log as warnings prefixed "libav: "; the
 * rest is dropped, since failures reach the caller through vg_error.
 */
#ifndef VG_FFMPEG_LOG_H
#define VG_FFMPEG_LOG_H

/* Installs the forwarding as libav's log callback. Safe to call from any
 * thread, any number of times: only the first call does anything. */
void vg_ffmpeg_log_install(void);

#endif
