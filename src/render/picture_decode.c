/*
 * picture_decode.c - a reference image read, checked and decoded: its
 * format sniffed, its declared size checked before anything large is
 * allocated (so a small file cannot expand into a huge picture), decoded
 * with libavcodec, and its EXIF orientation read. See picture_internal.h.
 */
#include "render/picture_internal.h"
#include "render/random.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libexif/exif-data.h>
#include <libswscale/swscale.h>

/* ---- reading and checking ------------------------------------------- */

/* Problems with a client's image are theirs to fix: 422, naming the form
 * field images arrive in and which of them is at fault. */

int pic_refuse(vg_error *err, const image_ref *ref, const char *fmt, ...)
{
    char why[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof(why), fmt, args);
    va_end(args);
    return vg_error_set(err, 422, "invalid_image", "files",
                        "image %d of %d %s", ref->position, ref->count, why);
}

int pic_out_of_memory(vg_error *err)
{
    return vg_error_set(err, 500, "render_failed", NULL, "out of memory");
}

static enum AVCodecID sniff_image(const uint8_t *b, size_t n)
{
    static const uint8_t png[8] = {0x89, 'P',  'N',  'G',
                                   '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(b, png, 8) == 0)
        return AV_CODEC_ID_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return AV_CODEC_ID_MJPEG;
    if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return AV_CODEC_ID_WEBP;
    return AV_CODEC_ID_NONE;
}

static const char *format_name(enum AVCodecID id)
{
    return id == AV_CODEC_ID_PNG     ? "PNG"
           : id == AV_CODEC_ID_MJPEG ? "JPEG"
                                     : "WebP";
}

/* Reads the whole file into a packet (with the padding decoders need). */
static AVPacket *read_image_file(const image_ref *ref, vg_error *err)
{
    FILE *f = ref->path != NULL ? fopen(ref->path, "rb") : NULL;
    if (f == NULL) {
        pic_refuse(err, ref, "cannot be read: %s",
                   ref->path != NULL ? strerror(errno) : "no file");
        return NULL;
    }
    AVPacket *packet = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        pic_refuse(err, ref, "cannot be read: %s", strerror(errno));
        goto done;
    }
    if (size == 0 || size > MAX_IMAGE_FILE_BYTES) {
        pic_refuse(err, ref, "is %s (at most 64 MiB)",
                   size == 0 ? "empty" : "too large");
        goto done;
    }
    packet = av_packet_alloc();
    if (packet == NULL || av_new_packet(packet, (int)size) < 0) {
        av_packet_free(&packet);
        pic_out_of_memory(err);
        goto done;
    }
    if (fread(packet->data, 1, (size_t)size, f) != (size_t)size) {
        av_packet_free(&packet);
        pic_refuse(err, ref, "cannot be read");
    }
done:
    fclose(f);
    return packet;
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint32_t le24(const uint8_t *p)
{
    return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The size a JPEG declares in its frame header (SOFn). */
static bool jpeg_size(const uint8_t *b, size_t n, uint32_t *w, uint32_t *h)
{
    size_t at = 2;
    while (at + 4 <= n) {
        if (b[at] != 0xff)
            return false;
        uint8_t marker = b[at + 1];
        if (marker == 0xff) { /* fill byte */
            at++;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
            at += 2;
            continue;
        }
        if (marker == 0xda || marker == 0xd9)
            return false; /* image data before any frame header */
        size_t length = be16(b + at + 2);
        /* SOF0-15 but DHT, JPG and DAC, and JPEG-LS's SOF55. */
        bool sof = (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 &&
                    marker != 0xc8 && marker != 0xcc) ||
                   marker == 0xf7;
        if (sof && length >= 7 && at + 9 <= n) {
            *h = be16(b + at + 5);
            *w = be16(b + at + 7);
            return true;
        }
        at += 2 + length;
    }
    return false;
}

/* The size an image declares in its header, read before decoding so an
 * oversized one is refused, with its size in the message, before any
 * decoder allocates for it. False when the header is not understood: the
 * decoder then has the last word (and its own pixel limit). */
static bool declared_size(const AVPacket *packet, enum AVCodecID id,
                          uint32_t *w, uint32_t *h)
{
    const uint8_t *b = packet->data;
    size_t n = (size_t)packet->size;
    switch (id) {
    case AV_CODEC_ID_PNG:
        if (n < 24 || memcmp(b + 12, "IHDR", 4) != 0)
            return false;
        *w = be32(b + 16);
        *h = be32(b + 20);
        return true;
    case AV_CODEC_ID_MJPEG:
        return jpeg_size(b, n, w, h);
    case AV_CODEC_ID_WEBP:
        if (n >= 30 && memcmp(b + 12, "VP8X", 4) == 0) {
            *w = le24(b + 24) + 1;
            *h = le24(b + 27) + 1;
            return true;
        }
        if (n >= 30 && memcmp(b + 12, "VP8 ", 4) == 0) {
            *w = (b[26] | (unsigned)b[27] << 8) & 0x3fff;
            *h = (b[28] | (unsigned)b[29] << 8) & 0x3fff;
            return true;
        }
        if (n >= 25 && memcmp(b + 12, "VP8L", 4) == 0 && b[20] == 0x2f) {
            uint32_t bits = (uint32_t)b[21] | (uint32_t)b[22] << 8 |
                            (uint32_t)b[23] << 16 | (uint32_t)b[24] << 24;
            *w = (bits & 0x3fff) + 1;
            *h = ((bits >> 14) & 0x3fff) + 1;
            return true;
        }
        return false;
    default:
        return false;
    }
}

static int check_size(uint32_t w, uint32_t h, const image_ref *ref,
                      vg_error *err)
{
    if (w == 0 || h == 0)
        return pic_refuse(err, ref, "has no pixels (%" PRIu32 "x%" PRIu32 ")",
                          w, h);
    if (w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE ||
        (uint64_t)w * h > MAX_IMAGE_PIXELS)
        return pic_refuse(err, ref,
                          "is %" PRIu32 "x%" PRIu32 " pixels: at most %d "
                          "pixels a side and %d megapixels are accepted",
                          w, h, MAX_IMAGE_SIDE, MAX_IMAGE_PIXELS / 1000000);
    return 0;
}

/* What a PNG decodes to, from its header: bytes a pixel by colour type
 * and bit depth. Zero when the header is not understood. */
static uint64_t png_decoded_bytes(const AVPacket *packet, uint32_t w,
                                  uint32_t h)
{
    if (packet->size < 26)
        return 0;
    unsigned depth = packet->data[24], type = packet->data[25];
    /* Grey, -, RGB, palette, grey + alpha, -, RGBA. */
    static const unsigned channels[7] = {1, 0, 3, 1, 2, 0, 4};
    if (type > 6 || channels[type] == 0)
        return 0;
    uint64_t bytes = depth == 16 ? 2 : 1;
    return (uint64_t)w * h * channels[type] * bytes;
}

/* The EXIF orientation of a JPEG (1 .. 8), 1 when it has none. Cameras
 * and phones store pictures as the sensor saw them and record how to
 * turn them upright; every viewer applies it, so clients expect it. */
static int jpeg_orientation(const AVPacket *packet)
{
    ExifData *exif = exif_data_new();
    if (exif == NULL)
        return 1;
    /* Read only: do not let libexif "repair" the data it loaded. */
    exif_data_unset_option(exif, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(exif, packet->data, (unsigned)packet->size);
    int orientation = 1;
    ExifEntry *entry =
        exif_content_get_entry(exif->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (entry != NULL && entry->format == EXIF_FORMAT_SHORT &&
        entry->components >= 1 && entry->size >= 2) {
        int v = exif_get_short(entry->data, exif_data_get_byte_order(exif));
        if (v >= 1 && v <= 8)
            orientation = v;
    }
    exif_data_unref(exif);
    return orientation;
}

int pic_decode_image(const image_ref *ref, oriented *out, vg_error *err)
{
    AVPacket *packet = read_image_file(ref, err);
    if (packet == NULL)
        return -1;
    AVFrame *frame = NULL;
    AVCodecContext *ctx = NULL;
    int ret = -1;
    enum AVCodecID id = sniff_image(packet->data, (size_t)packet->size);
    uint32_t w, h;
    if (id == AV_CODEC_ID_NONE) {
        pic_refuse(err, ref, "is not a PNG, JPEG or WebP file");
        goto done;
    }
    bool declared = declared_size(packet, id, &w, &h);
    if (declared && check_size(w, h, ref, err) < 0)
        goto done;
    uint64_t decoded = declared && id == AV_CODEC_ID_PNG
                           ? png_decoded_bytes(packet, w, h)
                           : 0;
    if (decoded > MAX_DECODED_BYTES) {
        pic_refuse(err, ref,
                   "is %" PRIu32 "x%" PRIu32 " pixels of 16 bits a channel, "
                   "%" PRIu64 " MiB decoded: at most %ld MiB (about %ld "
                   "megapixels at this depth, or use 8 bits a channel)",
                   w, h, decoded >> 20, MAX_DECODED_BYTES >> 20,
                   (long)((double)MAX_DECODED_BYTES * w * h / decoded / 1e6));
        goto done;
    }
    if (id == AV_CODEC_ID_WEBP && packet->size >= 21 &&
        memcmp(packet->data + 12, "VP8X", 4) == 0 &&
        (packet->data[20] & 0x02)) {
        pic_refuse(err, ref, "is an animated WebP, which is not supported");
        goto done;
    }
    out->orientation = id == AV_CODEC_ID_MJPEG ? jpeg_orientation(packet) : 1;

    const AVCodec *codec = avcodec_find_decoder(id);
    ctx = codec ? avcodec_alloc_context3(codec) : NULL;
    frame = av_frame_alloc();
    if (ctx == NULL || frame == NULL) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot set up the %s decoder", avcodec_get_name(id));
        goto done;
    }
    /* FFmpeg's max_pixels counts the picture it allocates, padded and
     * aligned, so a 7071x7071 image (under 50 megapixels) would fail
     * it. A declared size was checked above, against the documented
     * limits: the decoder gets room for its padding around exactly that
     * size. Only when the header could not be read is its own limit the
     * last line of defence; the decoded size is checked again below. */
    ctx->max_pixels =
        declared ? ((int64_t)w + 256) * ((int64_t)h + 256) : MAX_IMAGE_PIXELS;
    int rc = avcodec_open2(ctx, codec, NULL);
    if (rc >= 0)
        rc = avcodec_send_packet(ctx, packet);
    /* One packet is the whole picture: flush so every decoder gives it
     * up now. */
    if (rc >= 0)
        rc = avcodec_send_packet(ctx, NULL);
    if (rc >= 0)
        rc = avcodec_receive_frame(ctx, frame);
    if (rc >= 0 && frame->format < 0)
        rc = AVERROR_INVALIDDATA;
    if (rc < 0) {
        pic_refuse(err, ref, "cannot be decoded as %s: %s", format_name(id),
                   av_err2str(rc));
        goto done;
    }
    uint32_t decoded_w = (uint32_t)frame->width;
    uint32_t decoded_h = (uint32_t)frame->height;
    if (check_size(decoded_w, decoded_h, ref, err) < 0)
        goto done;
    out->frame = frame;
    frame = NULL;
    ret = 0;
done:
    av_frame_free(&frame);
    avcodec_free_context(&ctx);
    av_packet_free(&packet);
    return ret;
}
