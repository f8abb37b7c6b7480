/*
 * mp4.c - inspecting and remuxing upstream MP4 files; see mp4.h.
 *
 * The file comes from a provider, so it is opened defensively: its first
 * bytes must be an ISO file type box or probe as the MOV family before
 * any demuxer runs, the mov demuxer is then forced (no other demuxer,
 * such as a playlist that opens further files, ever sees the bytes) and
 * only the file protocol is allowed. No decoder runs: the container's own index says everything
 * asked for, and checking that index against the file size catches the
 * commonest broken download, a fast-start MP4 whose media data was cut
 * short (its header is intact, so it would open fine).
 */
#include "media/mp4.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>

#include "media/ffmpeg_log.h"

/* FFmpeg's name for the mov demuxer, which reads the whole family. */
#define MOV_FAMILY "mov,mp4,m4a,3gp,3g2,mj2"
/* How much of the file's start is probed: first PROBE_FIRST bytes, then
 * all PROBE_BYTES if that left the format in doubt, as
 * avformat_open_input does (2 KiB, doubling while the best score is at
 * most AVPROBE_SCORE_RETRY). Each round asks every demuxer FFmpeg has,
 * at about 40 ns a byte in all: an MP4 is told in the first round. */
#define PROBE_FIRST 2048
#define PROBE_BYTES 4096

/* ---- opening ----------------------------------------------------------- */

/* How a failure is reported: inspect blames the upstream (502) and does
 * not show clients where vidgate keeps its files; the remux blames itself
 * (500) and names the file for the operator. */
typedef struct blame {
    int status;
    const char *code;
    const char *name; /* what messages call the file */
} blame;

/* "file:" + path, so a path with a colon is never read as a protocol.
 * Returns NULL when out of memory. */
static char *file_url(const char *path)
{
    size_t len = strlen(path) + sizeof("file:");
    char *url = malloc(len);
    if (url != NULL)
        snprintf(url, len, "file:%s", path);
    return url;
}

static bool is_video(const AVStream *st)
{
    return st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
           !(st->disposition & AV_DISPOSITION_ATTACHED_PIC);
}

static uint64_t big_endian(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* pread, retried when a signal interrupts it. */
static ssize_t read_at(int fd, void *buf, size_t n, off_t at)
{
    ssize_t got;
    do
        got = pread(fd, buf, n, at);
    while (got < 0 && errno == EINTR);
    return got;
}

/* An ISO base media file (MP4, MOV, 3GP) names its family in its first
 * box: a file type box ("ftyp") of a sane size at the very start. For
 * such a file the mov demuxer's own probe answers with the highest score
 * there is, so asking every other demuxer too (most of the check's cost)
 * cannot change the verdict. */
static bool starts_with_ftyp(const unsigned char *buf, size_t n)
{
    return n >= 8 && memcmp(buf + 4, "ftyp", 4) == 0 &&
           big_endian(buf, 4) >= 8;
}

/* Probes the first bytes the way avformat_open_input would, and requires
 * the MOV family. */
static int check_family(int fd, const blame *b, vg_error *err)
{
    unsigned char buf[PROBE_BYTES + AVPROBE_PADDING_SIZE];
    ssize_t got = read_at(fd, buf, PROBE_BYTES, 0);
    if (got < 0)
        return vg_error_set(err, b->status, b->code, NULL, "cannot read %s",
                            b->name);
    size_t n = (size_t)got;
    if (n == 0)
        return vg_error_set(err, b->status, b->code, NULL, "%s is empty",
                            b->name);
    if (starts_with_ftyp(buf, n))
        return 0;
    memset(buf + n, 0, AVPROBE_PADDING_SIZE);
    /* No file name: the extension must not vouch for the content. A
     * round's buffer is followed by zeroed padding, as FFmpeg's is. */
    int score = 0;
    const AVInputFormat *fmt = NULL;
    size_t round = n < PROBE_FIRST ? n : PROBE_FIRST;
    for (;;) {
        unsigned char after[AVPROBE_PADDING_SIZE];
        memcpy(after, buf + round, sizeof(after));
        memset(buf + round, 0, sizeof(after));
        AVProbeData pd = {.filename = "", .buf = buf, .buf_size = (int)round};
        fmt = av_probe_input_format3(&pd, 1, &score);
        memcpy(buf + round, after, sizeof(after));
        if (score > AVPROBE_SCORE_RETRY || round == n)
            break;
        round = n;
    }
    if (fmt == NULL || score < AVPROBE_SCORE_MAX / 4)
        return vg_error_set(err, b->status, b->code, NULL,
                            "%s is not an MP4 file (its format is not "
                            "recognised)",
                            b->name);
    if (strcmp(fmt->name, MOV_FAMILY) != 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "%s is not an MP4 file (it looks like \"%s\")",
                            b->name, fmt->name);
    return 0;
}

/* Every top-level box must end inside the file. A download cut short
 * ends inside a box (the media data, or the index itself), and the mov
 * demuxer opens some of those without complaint, only with fewer
 * streams or samples than the file was meant to have. */
static int check_boxes(int fd, const blame *b, vg_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "cannot tell the size of %s", b->name);
    uint64_t size = (uint64_t)st.st_size;
    uint64_t at = 0;
    int result = 0;
    while (at < size && result == 0) {
        unsigned char h[16];
        size_t want = size - at >= 16 ? 16 : (size_t)(size - at);
        if (read_at(fd, h, want, (off_t)at) != (ssize_t)want || want < 8) {
            result = -1;
            break;
        }
        uint64_t box = big_endian(h, 4);
        if (box == 0)
            break; /* the last box, running to the end of the file */
        if (box == 1) {
            if (want < 16) {
                result = -1;
                break;
            }
            box = big_endian(h + 8, 8);
        }
        if (box < 8 || box > size - at)
            result = -1;
        else
            at += box;
    }
    if (result != 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "%s is truncated: its last MP4 box runs past "
                            "the end of the file (an incomplete download?)",
                            b->name);
    return 0;
}

/* The family and the boxes, read through one descriptor. */
static int check_file(const char *path, const blame *b, vg_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "cannot open %s: %s", b->name, strerror(errno));
    int rc = check_family(fd, b, err);
    if (rc == 0)
        rc = check_boxes(fd, b, err);
    close(fd);
    return rc;
}

/* The samples of every stream must lie inside the file; a cut-short
 * download keeps its index but loses the data the index points to. */
static int check_complete(AVFormatContext *fc, const blame *b, vg_error *err)
{
    int64_t size = avio_size(fc->pb);
    if (size < 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "cannot tell the size of %s", b->name);
    int64_t end = 0;
    for (unsigned s = 0; s < fc->nb_streams; s++) {
        AVStream *st = fc->streams[s];
        int n = avformat_index_get_entries_count(st);
        for (int i = 0; i < n; i++) {
            const AVIndexEntry *e = avformat_index_get_entry(st, i);
            if (e != NULL && e->pos + e->size > end)
                end = e->pos + e->size;
        }
    }
    if (end > size)
        return vg_error_set(err, b->status, b->code, NULL,
                            "%s is truncated: %lld bytes of media data are "
                            "missing (an incomplete download?)",
                            b->name, (long long)(end - size));
    return 0;
}

/* Opens a checked MOV-family file with at least one video stream; on
 * success *out is open and its first video stream is at *video_index. */
static int open_checked(const char *path, const blame *b,
                        AVFormatContext **out, int *video_index, vg_error *err)
{
    vg_ffmpeg_log_install();
    *out = NULL;
    if (check_file(path, b, err) != 0)
        return -1;
    char *url = file_url(path);
    if (url == NULL)
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    const AVInputFormat *mov = av_find_input_format("mov");
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    av_dict_set(&opts, "format_whitelist", MOV_FAMILY, 0);
    AVFormatContext *fc = NULL;
    int ret = avformat_open_input(&fc, url, mov, &opts);
    av_dict_free(&opts);
    free(url);
    if (ret < 0)
        return vg_error_set(err, b->status, b->code, NULL,
                            "%s is not a readable MP4 file: %s", b->name,
                            av_err2str(ret));

    int first = -1;
    for (unsigned s = 0; s < fc->nb_streams && first < 0; s++)
        if (is_video(fc->streams[s]))
            first = (int)s;
    const char *problem = NULL;
    if (first < 0)
        problem = "has no video stream";
    else if (fc->streams[first]->codecpar->width <= 0 ||
             fc->streams[first]->codecpar->height <= 0)
        problem = "has a video stream without a frame size";
    else if (fc->streams[first]->codecpar->codec_id == AV_CODEC_ID_NONE)
        problem = "has a video stream in an unknown codec";
    else if (avformat_index_get_entries_count(fc->streams[first]) <= 0)
        problem = "has a video stream without frames";
    if (problem != NULL) {
        vg_error_set(err, b->status, b->code, NULL, "%s %s", b->name, problem);
        avformat_close_input(&fc);
        return -1;
    }
    if (check_complete(fc, b, err) != 0) {
        avformat_close_input(&fc);
        return -1;
    }
    *out = fc;
    *video_index = first;
    return 0;
}

/* ---- inspecting -------------------------------------------------------- */

static int64_t to_ms(int64_t t, AVRational tb)
{
    return av_rescale_q(t, tb, (AVRational){1, 1000});
}

int vg_mp4_inspect(const char *path, vg_mp4_info *info, vg_error *err)
{
    static const blame upstream = {502, "upstream_bad_video",
                                   "the upstream video"};
    AVFormatContext *fc;
    int v;
    memset(info, 0, sizeof(*info));
    if (open_checked(path, &upstream, &fc, &v, err) != 0)
        return -1;
    const AVStream *st = fc->streams[v];
    info->width = st->codecpar->width;
    info->height = st->codecpar->height;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        info->duration_ms = to_ms(st->duration, st->time_base);
    else if (fc->duration != AV_NOPTS_VALUE && fc->duration > 0)
        info->duration_ms = to_ms(fc->duration, AV_TIME_BASE_Q);
    info->video_frames = st->nb_frames > 0
                             ? st->nb_frames
                             : avformat_index_get_entries_count(st);
    for (unsigned s = 0; s < fc->nb_streams; s++)
        if (fc->streams[s]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
            info->has_audio = true;
    snprintf(info->video_codec, sizeof(info->video_codec), "%s",
             avcodec_get_name(st->codecpar->codec_id));
    avformat_close_input(&fc);
    return 0;
}

/* ---- stripping audio --------------------------------------------------- */

static int remux_error(vg_error *err, int averr, const char *what,
                       const char *path)
{
    return vg_error_set(err, 500, "internal_error", NULL,
                        "cannot remove the audio from %s: %s: %s", path, what,
                        av_err2str(averr));
}

/* Adds an output stream copying in's parameters; rotation and other
 * stream side data come along so the copy plays the same way. */
static int copy_stream(AVFormatContext *oc, const AVStream *in)
{
    AVStream *st = avformat_new_stream(oc, NULL);
    if (st == NULL)
        return AVERROR(ENOMEM);
    int ret = avcodec_parameters_copy(st->codecpar, in->codecpar);
    if (ret < 0)
        return ret;
    /* The tag is the input container's; let the muxer pick its own. */
    st->codecpar->codec_tag = 0;
    st->time_base = in->time_base;
    st->disposition = in->disposition;
    ret = av_dict_copy(&st->metadata, in->metadata, 0);
    if (ret < 0)
        return ret;
#ifndef FF_API_AVSTREAM_SIDE_DATA
    /* Before FFmpeg 6.1 side data lived on the stream, not in codecpar
     * (where avcodec_parameters_copy now copies it). */
    for (int i = 0; i < in->nb_side_data; i++) {
        const AVPacketSideData *sd = &in->side_data[i];
        uint8_t *dst = av_stream_new_side_data(st, sd->type, sd->size);
        if (dst == NULL)
            return AVERROR(ENOMEM);
        memcpy(dst, sd->data, sd->size);
    }
#endif
    return 0;
}

/* Copies the video packets of ic into a new MP4 at part. */
static int remux_video(AVFormatContext *ic, const char *in_path,
                       const char *part, vg_error *err)
{
    int result = -1;
    AVFormatContext *oc = NULL;
    AVPacket *pkt = av_packet_alloc();
    int *map = calloc(ic->nb_streams, sizeof(*map));
    char *url = file_url(part);
    if (pkt == NULL || map == NULL || url == NULL) {
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        goto done;
    }
    int ret = avformat_alloc_output_context2(&oc, NULL, "mp4", url);
    if (ret < 0 || oc == NULL) {
        remux_error(err, ret < 0 ? ret : AVERROR(ENOMEM),
                    "cannot create the MP4 muxer", in_path);
        goto done;
    }
    int n_out = 0;
    for (unsigned s = 0; s < ic->nb_streams; s++) {
        map[s] = -1;
        if (!is_video(ic->streams[s]))
            continue;
        ret = copy_stream(oc, ic->streams[s]);
        if (ret < 0) {
            remux_error(err, ret, "cannot copy a video stream", in_path);
            goto done;
        }
        map[s] = n_out++;
    }
    av_dict_copy(&oc->metadata, ic->metadata, 0);

    ret = avio_open(&oc->pb, url, AVIO_FLAG_WRITE);
    if (ret < 0) {
        vg_error_set(err, 500, "internal_error", NULL, "cannot create %s: %s",
                     part, av_err2str(ret));
        goto done;
    }
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    ret = avformat_write_header(oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        remux_error(err, ret, "cannot write the MP4 header", in_path);
        goto done;
    }
    for (;;) {
        ret = av_read_frame(ic, pkt);
        if (ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            remux_error(err, ret, "cannot read a packet", in_path);
            goto done;
        }
        unsigned s = (unsigned)pkt->stream_index;
        if (s >= ic->nb_streams || map[s] < 0) {
            av_packet_unref(pkt);
            continue;
        }
        AVStream *out_st = oc->streams[map[s]];
        av_packet_rescale_ts(pkt, ic->streams[s]->time_base,
                             out_st->time_base);
        pkt->stream_index = map[s];
        pkt->pos = -1;
        /* Takes the packet's data whether it succeeds or not. */
        ret = av_interleaved_write_frame(oc, pkt);
        if (ret < 0) {
            remux_error(err, ret, "cannot write a packet", in_path);
            goto done;
        }
    }
    /* The trailer is where +faststart moves the index to the front. */
    ret = av_write_trailer(oc);
    if (ret < 0) {
        remux_error(err, ret, "cannot finish the MP4", in_path);
        goto done;
    }
    ret = avio_closep(&oc->pb);
    if (ret < 0) {
        vg_error_set(err, 500, "internal_error", NULL, "cannot write %s: %s",
                     part, av_err2str(ret));
        goto done;
    }
    result = 0;
done:
    if (oc != NULL) {
        avio_closep(&oc->pb);
        avformat_free_context(oc);
    }
    av_packet_free(&pkt);
    free(map);
    free(url);
    return result;
}

int vg_mp4_strip_audio(const char *in, const char *out, vg_error *err)
{
    char name[PATH_MAX + 16];
    snprintf(name, sizeof(name), "the video %s", in);
    blame remux = {500, "internal_error", name};
    AVFormatContext *ic;
    int v;
    if (open_checked(in, &remux, &ic, &v, err) != 0)
        return -1;
    size_t len = strlen(out) + sizeof(".part");
    char *part = malloc(len);
    if (part == NULL) {
        avformat_close_input(&ic);
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    }
    snprintf(part, len, "%s.part", out);

    int result = remux_video(ic, in, part, err);
    avformat_close_input(&ic);
    if (result == 0 && rename(part, out) != 0)
        result = vg_error_set(err, 500, "internal_error", NULL,
                              "cannot move the video to %s: %s", out,
                              strerror(errno));
    if (result != 0)
        unlink(part);
    free(part);
    return result;
}
