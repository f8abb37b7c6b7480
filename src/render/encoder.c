/*
 * encoder.c - the MP4 writer behind encoder.h: libx264 video, FFmpeg's
 * native AAC audio, the mov muxer with +faststart.
 *
 * Settings follow what browsers play everywhere: H.264 High profile in
 * yuv420p with BT.709 colour tags, AAC-LC, moov before mdat. Nothing is
 * buffered here beyond what the encoders themselves keep (x264's
 * lookahead and its slice threads), so memory does not grow with duration.
 */
#include "render/encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <stdint.h>
#include <x264.h>

/* Slices per picture, each on its own x264 thread (see open_video). */
#define VIDEO_SLICES 4

/* The CPU features x264 would use, less AVX-512, as its "asm" option (a
 * number is taken as the flags themselves). x264 164's AVX-512 code
 * reads memory it never wrote (macroblock-tree rate control, at least):
 * with it, the same pictures encoded in a process whose heap held other
 * bytes came out different, so a seed did not give the same file. */
static void x264_asm_option(char *out, size_t size)
{
    x264_param_t param;
    x264_param_default(&param); /* detects the CPU */
    snprintf(out, size, "asm=%u", param.cpu & ~(unsigned)X264_CPU_AVX512);
}

struct vg_encoder {
    vg_encoder_config config;
    AVFormatContext *format;
    AVPacket *packet;

    AVCodecContext *video;
    AVStream *video_stream;
    int64_t video_frames_written;

    AVCodecContext *audio;
    AVStream *audio_stream;
    AVFrame *audio_frame;
    int64_t audio_samples_written;
    int64_t audio_samples_total;
    int audio_frame_samples; /* nb_samples of the frame handed out last */
};

static int fail_av(vg_error *err, int averr, const char *what)
{
    return vg_error_set(err, 500, "render_failed", NULL, "%s: %s", what,
                        av_err2str(averr));
}

static int fail(vg_error *err, const char *what)
{
    return vg_error_set(err, 500, "render_failed", NULL, "%s", what);
}

static int open_video(vg_encoder *enc, vg_error *err)
{
    const vg_encoder_config *c = &enc->config;
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (codec == NULL)
        return fail(err, "the libx264 encoder is not available");

    enc->video_stream = avformat_new_stream(enc->format, NULL);
    enc->video = avcodec_alloc_context3(codec);
    if (enc->video_stream == NULL || enc->video == NULL)
        return fail(err, "out of memory opening the video encoder");

    AVCodecContext *ctx = enc->video;
    ctx->width = c->width;
    ctx->height = c->height;
    ctx->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx->time_base = (AVRational){1, c->fps};
    ctx->framerate = (AVRational){c->fps, 1};
    ctx->sample_aspect_ratio = (AVRational){1, 1};
    /* A keyframe every two seconds keeps seeking (Range requests in the
     * browser) cheap without costing much at crf 23. */
    ctx->gop_size = 2 * c->fps;
    /* Slice threads with a fixed count: each picture is cut into four
     * slices encoded in parallel. With x264's default frame threads the
     * thread count, taken from the cores, shapes the bitstream, so a
     * seed would give other bytes on another machine; slices cost a few
     * tenths of a percent of size and a quarter less memory. */
    ctx->thread_type = FF_THREAD_SLICE;
    ctx->thread_count = VIDEO_SLICES;
    /* The frames are drawn with BT.709 coefficients; saying so in the VUI
     * makes every player convert them back the same way. */
    ctx->color_range = AVCOL_RANGE_MPEG;
    ctx->color_primaries = AVCOL_PRI_BT709;
    ctx->color_trc = AVCOL_TRC_BT709;
    ctx->colorspace = AVCOL_SPC_BT709;
    if (enc->format->oformat->flags & AVFMT_GLOBALHEADER)
        ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    AVDictionary *opts = NULL;
    av_dict_set(&opts, "preset", "veryfast", 0);
    av_dict_set(&opts, "crf", "23", 0);
    av_dict_set(&opts, "profile", "high", 0);
    char asm_option[32];
    x264_asm_option(asm_option, sizeof(asm_option));
    av_dict_set(&opts, "x264-params", asm_option, 0);
    int ret = avcodec_open2(ctx, codec, &opts);
    av_dict_free(&opts);
    if (ret < 0)
        return fail_av(err, ret, "cannot open the H.264 encoder");

    ret = avcodec_parameters_from_context(enc->video_stream->codecpar, ctx);
    if (ret < 0)
        return fail_av(err, ret, "cannot set the video stream parameters");
    enc->video_stream->time_base = ctx->time_base;
    enc->video_stream->avg_frame_rate = ctx->framerate;
    return 0;
}

static int open_audio(vg_encoder *enc, vg_error *err)
{
    const vg_encoder_config *c = &enc->config;
    /* By name: FFmpeg's own AAC encoder, not whichever one was
     * registered first for the codec id. */
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    if (codec == NULL)
        return fail(err, "the aac encoder is not available");

    enc->audio_stream = avformat_new_stream(enc->format, NULL);
    enc->audio = avcodec_alloc_context3(codec);
    enc->audio_frame = av_frame_alloc();
    if (enc->audio_stream == NULL || enc->audio == NULL ||
        enc->audio_frame == NULL)
        return fail(err, "out of memory opening the audio encoder");

    AVCodecContext *ctx = enc->audio;
    ctx->sample_fmt = AV_SAMPLE_FMT_FLTP;
    ctx->sample_rate = c->sample_rate;
    av_channel_layout_default(&ctx->ch_layout, c->channels);
    ctx->bit_rate = c->channels > 1 ? 128000 : 64000;
    ctx->time_base = (AVRational){1, c->sample_rate};
    if (enc->format->oformat->flags & AVFMT_GLOBALHEADER)
        ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    /* The "fast" coder: FFmpeg's default (twoloop) costs about as much CPU
     * as encoding a 480P picture track, for no audible gain on a voice
     * over a soft bed at 128 kb/s. */
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "aac_coder", "fast", 0);
    int ret = avcodec_open2(ctx, codec, &opts);
    av_dict_free(&opts);
    if (ret < 0)
        return fail_av(err, ret, "cannot open the AAC encoder");
    ret = avcodec_parameters_from_context(enc->audio_stream->codecpar, ctx);
    if (ret < 0)
        return fail_av(err, ret, "cannot set the audio stream parameters");
    enc->audio_stream->time_base = ctx->time_base;

    AVFrame *frame = enc->audio_frame;
    frame->format = ctx->sample_fmt;
    frame->sample_rate = ctx->sample_rate;
    frame->nb_samples = ctx->frame_size;
    ret = av_channel_layout_copy(&frame->ch_layout, &ctx->ch_layout);
    if (ret < 0)
        return fail_av(err, ret, "cannot set the audio channel layout");
    ret = av_frame_get_buffer(frame, 0);
    if (ret < 0)
        return fail_av(err, ret, "cannot allocate an audio frame");

    /* Exact length: duration * sample_rate samples, the same span as
     * frames / fps. */
    enc->audio_samples_total = av_rescale(c->frames, c->sample_rate, c->fps);
    return 0;
}

vg_encoder *vg_encoder_open(const char *path, const vg_encoder_config *config,
                            vg_error *err)
{
    vg_encoder *enc = calloc(1, sizeof(*enc));
    if (enc == NULL) {
        fail(err, "out of memory");
        return NULL;
    }
    enc->config = *config;

    /* "file:" keeps a colon in the path from being read as a protocol
     * name. The muxer keeps the URL: +faststart reopens the file by it. */
    size_t len = strlen(path) + sizeof("file:");
    char *url = malloc(len);
    if (url == NULL) {
        fail(err, "out of memory");
        free(enc);
        return NULL;
    }
    snprintf(url, len, "file:%s", path);

    int ret = avformat_alloc_output_context2(&enc->format, NULL, "mp4", url);
    if (ret < 0 || enc->format == NULL) {
        fail_av(err, ret < 0 ? ret : AVERROR(ENOMEM),
                "cannot create the MP4 muxer");
        goto error;
    }
    enc->packet = av_packet_alloc();
    if (enc->packet == NULL) {
        fail(err, "out of memory");
        goto error;
    }
    if (open_video(enc, err) < 0)
        goto error;
    if (config->audio && open_audio(enc, err) < 0)
        goto error;

    ret = avio_open(&enc->format->pb, url, AVIO_FLAG_WRITE);
    if (ret < 0) {
        vg_error_set(err, 500, "render_failed", NULL, "cannot create %s: %s",
                     path, av_err2str(ret));
        goto error;
    }
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    ret = avformat_write_header(enc->format, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        fail_av(err, ret, "cannot write the MP4 header");
        goto error;
    }
    free(url);
    return enc;

error:
    free(url);
    vg_encoder_free(enc);
    return NULL;
}

/* Moves every packet the encoder has ready into the muxer. */
static int drain(vg_encoder *enc, AVCodecContext *ctx, AVStream *stream,
                 vg_error *err)
{
    for (;;) {
        int ret = avcodec_receive_packet(ctx, enc->packet);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return fail_av(err, ret, "encoding failed");
        av_packet_rescale_ts(enc->packet, ctx->time_base, stream->time_base);
        enc->packet->stream_index = stream->index;
        ret = av_interleaved_write_frame(enc->format, enc->packet);
        if (ret < 0)
            return fail_av(err, ret, "cannot write to the MP4 file");
    }
}

int vg_encoder_write_video(vg_encoder *enc, AVFrame *picture, vg_error *err)
{
    if (enc->video_frames_written >= enc->config.frames)
        return fail(err, "more video frames than announced");
    if (picture->width != enc->config.width ||
        picture->height != enc->config.height ||
        picture->format != AV_PIX_FMT_YUV420P)
        return fail(err, "a video frame of the wrong shape");
    picture->pts = enc->video_frames_written;
    /* libx264 copies the picture into its own frame pool inside this
     * call, which is what lets the caller draw into it again at once. */
    int ret = avcodec_send_frame(enc->video, picture);
    if (ret < 0)
        return fail_av(err, ret, "cannot encode a video frame");
    enc->video_frames_written++;
    return drain(enc, enc->video, enc->video_stream, err);
}

AVFrame *vg_encoder_audio_frame(vg_encoder *enc, int64_t *first_sample,
                                vg_error *err)
{
    if (enc->audio == NULL)
        return NULL;
    int64_t remaining = enc->audio_samples_total - enc->audio_samples_written;
    /* Audio follows the video clock; it may run ahead by less than one
     * AAC frame, which keeps the muxer's interleaving queue short. */
    int64_t video_end = av_rescale(enc->video_frames_written,
                                   enc->config.sample_rate, enc->config.fps);
    if (remaining <= 0 || enc->audio_samples_written >= video_end)
        return NULL;
    int ret = av_frame_make_writable(enc->audio_frame);
    if (ret < 0) {
        fail_av(err, ret, "cannot get a writable audio frame");
        return NULL;
    }
    /* Only the last frame may be short (the encoder has
     * AV_CODEC_CAP_SMALL_LAST_FRAME); it records how much of its final
     * packet is real, so the track ends exactly where the video does. */
    int n = enc->audio->frame_size;
    if (remaining < n)
        n = (int)remaining;
    enc->audio_frame->nb_samples = n;
    enc->audio_frame_samples = n;
    *first_sample = enc->audio_samples_written;
    return enc->audio_frame;
}

int vg_encoder_write_audio(vg_encoder *enc, vg_error *err)
{
    enc->audio_frame->pts = enc->audio_samples_written;
    int ret = avcodec_send_frame(enc->audio, enc->audio_frame);
    if (ret < 0)
        return fail_av(err, ret, "cannot encode an audio frame");
    enc->audio_samples_written += enc->audio_frame_samples;
    return drain(enc, enc->audio, enc->audio_stream, err);
}

static int flush(vg_encoder *enc, AVCodecContext *ctx, AVStream *stream,
                 vg_error *err)
{
    int ret = avcodec_send_frame(ctx, NULL);
    if (ret < 0)
        return fail_av(err, ret, "cannot flush the encoder");
    return drain(enc, ctx, stream, err);
}

int vg_encoder_finish(vg_encoder *enc, vg_error *err)
{
    if (enc->video_frames_written != enc->config.frames ||
        enc->audio_samples_written != enc->audio_samples_total)
        return fail(err, "the clip ended before all frames were written");
    if (flush(enc, enc->video, enc->video_stream, err) < 0)
        return -1;
    if (enc->audio != NULL &&
        flush(enc, enc->audio, enc->audio_stream, err) < 0)
        return -1;
    int ret = av_write_trailer(enc->format);
    if (ret < 0)
        return fail_av(err, ret, "cannot complete the MP4 file");
    /* Closing flushes the last buffered bytes; a full disk shows here. */
    ret = avio_closep(&enc->format->pb);
    if (ret < 0)
        return fail_av(err, ret, "cannot write the MP4 file");
    return 0;
}

void vg_encoder_free(vg_encoder *enc)
{
    if (enc == NULL)
        return;
    avcodec_free_context(&enc->video);
    avcodec_free_context(&enc->audio);
    av_frame_free(&enc->audio_frame);
    av_packet_free(&enc->packet);
    if (enc->format != NULL) {
        if (enc->format->pb != NULL)
            avio_closep(&enc->format->pb);
        avformat_free_context(enc->format);
    }
    free(enc);
}
