/*
 * ffmpeg_log.c - FFmpeg's log forwarded to vidgate's; see ffmpeg_log.h.
 */
#include "media/ffmpeg_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include <libavutil/log.h>

#include "util/log.h"

static void forward_av_log(void *avcl, int level, const char *fmt,
                           va_list args)
{
    if (level > AV_LOG_ERROR)
        return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, args, line, sizeof(line),
                        &print_prefix);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len > 0)
        vg_log_warn("libav: %s", line);
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void install(void)
{
    av_log_set_callback(forward_av_log);
}

void vg_ffmpeg_log_install(void)
{
    pthread_once(&install_once, install);
}
