/*
 * picture.c - image-to-video: the request's reference images, one after
 * another, each under its own slow camera move, joined by crossfades.
 *
 * Each image is read, checked, decoded with libavcodec, turned upright by
 * its EXIF orientation, composited over a backdrop where it is see-through
 * and scaled with libswscale, once, into a YUV "slide" just large enough
 * for its camera move. The decoded original is freed before the next image
 * is read, so the source holds only the slides: memory is bounded by the
 * frame size and the image count, not by what clients upload.
 *
 * Everything random (camera paths, backdrop tint, the light of a fixed
 * camera) comes from the seed, so frame N is a pure function of N, the
 * images and the seed: equal requests give equal pixels.
 */
#include "render/picture.h"
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

/* The request layer limits the upload size; these stop a small file that
 * expands into a huge picture before anything large is allocated. */
#define MAX_IMAGE_FILE_BYTES (64L * 1024 * 1024)
#define MAX_IMAGE_PIXELS (50 * 1000 * 1000)
#define MAX_IMAGE_SIDE 16384
/* Decoding holds one original at a time; this bounds it. Only 16-bit PNGs
 * can go past it within the pixel limit (8 bytes a pixel with alpha). */
#define MAX_DECODED_BYTES (256L * 1024 * 1024)
/* How far the moving camera zooms into an image at most. */
#define PAN_ZOOM 1.25f
/* A very wide or tall image keeps at most this much of its long side per
 * frame-shaped crop, for panning; the rest is cut off before scaling. */
#define PAN_SLACK 1.6f
/* Crossfades between images last this long, or less when many images
 * share a short clip. */
#define TRANSITION_SECONDS 0.6f
/* See-through images are converted and composited this many rows at a
 * time, so no full-size RGBA copy of the original is ever made. */
#define STRIP_ROWS 64
/* The backdrop behind see-through areas: a blur of the image's own
 * colours on a grid this many cells high, pulled towards a seed-coloured
 * tone that contrasts with the image. */
#define BACKDROP_ROWS 8
#define BACKDROP_MAX_COLUMNS 64
#define BACKDROP_TONE 0.7f

/* BT.709 luma weights. */
#define KR 0.2126f
#define KG 0.7152f
#define KB 0.0722f

static const float TAU = 6.28318530718f;

/* An image scaled once to cover the frame at the deepest zoom, kept in
 * YUV so each frame only interpolates, and the camera move over it. */
typedef struct slide {
    int w, h;       /* even */
    uint8_t *y;     /* w x h */
    uint8_t *u, *v; /* w/2 x h/2 */
    float zoom0, zoom1;
    float pan_x0, pan_y0, pan_x1, pan_y1; /* fractions of the slack */
    float start, end; /* frames during which it is visible, maybe in part */
    bool ease_in, ease_out;
} slide;

/* Bilinear taps along one axis: indices and the weight of the second, in
 * 1/256. */
typedef struct tap {
    int i0, i1, w;
} tap;

struct vg_picture_source {
    int width, height, fps, frames;
    bool camera_fixed;
    float base_zoom; /* the zoom at which every slide just covers */
    slide slides[VG_PICTURE_MAX_IMAGES];
    int n_slides;
    float transition; /* frames */
    float light_w, light_phase;

    /* Scratch reused by every frame. */
    uint8_t *under[3]; /* the incoming slide during a crossfade */
    int under_linesize[3];
    tap *luma_taps, *chroma_taps;
    int *light_x, *light_y;
};

/* Which image a problem is about, for messages clients can act on. */
typedef struct image_ref {
    const char *path;
    int position, count; /* 1-based */
} image_ref;

/* A decoded image and how to turn it upright. */
typedef struct oriented {
    AVFrame *frame;
    int orientation; /* EXIF: 1 upright .. 8 */
} oriented;

/* The colours behind see-through areas: a blurred, toned grid over the
 * (cropped) image, read bilinearly. */
typedef struct backdrop {
    int columns, rows;
    float *rgb; /* columns x rows x 3 */
} backdrop;

/* ---- randomness ----------------------------------------------------- */

/* Each image draws from its own stream, so its path does not depend on
 * how much randomness the images before it used. */
static uint64_t stream_for(uint32_t seed, int image)
{
    uint64_t state = (uint64_t)seed * 0xd1b54a32d192ed03ULL +
                     (uint64_t)(image + 1) * 0x8cb92ba72f3d8dd7ULL;
    vg_random_next(&state);
    return state;
}

/* ---- colour --------------------------------------------------------- */

static uint8_t luma_of(float r, float g, float b)
{
    return (uint8_t)(16.5f + 219.0f * (KR * r + KG * g + KB * b));
}

/* Chroma of an average colour; 1.8556 and 1.5748 normalise B-Y and R-Y
 * to [-0.5, 0.5] for the BT.709 weights. */
static void chroma_of(float r, float g, float b, uint8_t *cb, uint8_t *cr)
{
    float y = KR * r + KG * g + KB * b;
    *cb = (uint8_t)(128.5f + 224.0f * (b - y) / 1.8556f);
    *cr = (uint8_t)(128.5f + 224.0f * (r - y) / 1.5748f);
}

static void hsv(float h, float s, float v, float out[3])
{
    h -= floorf(h);
    float f = h * 6.0f;
    int sector = (int)f % 6;
    f -= floorf(f);
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    const float table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t},
                               {p, q, v}, {t, p, v}, {v, p, q}};
    memcpy(out, table[sector], sizeof(table[0]));
}

/* ---- reading and checking ------------------------------------------- */

/* Problems with a client's image are theirs to fix: 422, naming the form
 * field images arrive in and which of them is at fault. */
static int refuse(vg_error *err, const image_ref *ref, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(vg_error *err, const image_ref *ref, const char *fmt, ...)
{
    char why[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof(why), fmt, args);
    va_end(args);
    return vg_error_set(err, 422, "invalid_image", "files",
                        "image %d of %d %s", ref->position, ref->count, why);
}

static int out_of_memory(vg_error *err)
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
        refuse(err, ref, "cannot be read: %s",
               ref->path != NULL ? strerror(errno) : "no file");
        return NULL;
    }
    AVPacket *packet = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        refuse(err, ref, "cannot be read: %s", strerror(errno));
        goto done;
    }
    if (size == 0 || size > MAX_IMAGE_FILE_BYTES) {
        refuse(err, ref, "is %s (at most 64 MiB)",
               size == 0 ? "empty" : "too large");
        goto done;
    }
    packet = av_packet_alloc();
    if (packet == NULL || av_new_packet(packet, (int)size) < 0) {
        av_packet_free(&packet);
        out_of_memory(err);
        goto done;
    }
    if (fread(packet->data, 1, (size_t)size, f) != (size_t)size) {
        av_packet_free(&packet);
        refuse(err, ref, "cannot be read");
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
        return refuse(err, ref, "has no pixels (%" PRIu32 "x%" PRIu32 ")", w,
                      h);
    if (w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE ||
        (uint64_t)w * h > MAX_IMAGE_PIXELS)
        return refuse(err, ref,
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

static int decode_image(const image_ref *ref, oriented *out, vg_error *err)
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
        refuse(err, ref, "is not a PNG, JPEG or WebP file");
        goto done;
    }
    bool declared = declared_size(packet, id, &w, &h);
    if (declared && check_size(w, h, ref, err) < 0)
        goto done;
    uint64_t decoded = declared && id == AV_CODEC_ID_PNG
                           ? png_decoded_bytes(packet, w, h)
                           : 0;
    if (decoded > MAX_DECODED_BYTES) {
        refuse(err, ref,
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
        refuse(err, ref, "is an animated WebP, which is not supported");
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
    ctx->max_pixels = declared ? ((int64_t)w + 256) * ((int64_t)h + 256)
                               : MAX_IMAGE_PIXELS;
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
        refuse(err, ref, "cannot be decoded as %s: %s", format_name(id),
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

/* ---- geometry ------------------------------------------------------- */

static bool swaps_sides(int orientation)
{
    return orientation >= 5;
}

/* Where upright pixel (x, y) is stored in a w x h picture of the given
 * EXIF orientation: *sx = ax*x + bx*y + cx, *sy = ay*x + by*y + cy. */
typedef struct stored_at {
    int ax, bx, cx, ay, by, cy;
} stored_at;

static stored_at orientation_map(int orientation, int w, int h)
{
    switch (orientation) {
    case 2: /* mirrored */
        return (stored_at){-1, 0, w - 1, 0, 1, 0};
    case 3: /* upside down */
        return (stored_at){-1, 0, w - 1, 0, -1, h - 1};
    case 4: /* upside down, mirrored */
        return (stored_at){1, 0, 0, 0, -1, h - 1};
    case 5: /* transposed */
        return (stored_at){0, 1, 0, 1, 0, 0};
    case 6: /* turn clockwise to view */
        return (stored_at){0, 1, 0, -1, 0, h - 1};
    case 7: /* transversed */
        return (stored_at){0, -1, w - 1, -1, 0, h - 1};
    case 8: /* turn anticlockwise to view */
        return (stored_at){0, -1, w - 1, 1, 0, 0};
    default:
        return (stored_at){1, 0, 0, 0, 1, 0};
    }
}

static int even_up(double v)
{
    int n = (int)ceil(v);
    return n + (n & 1);
}

/* Taps for n output samples whose centres map to `first + i * step` in a
 * source axis of `size` samples. */
static void make_taps(tap *taps, int n, float first, float step, int size)
{
    for (int i = 0; i < n; i++) {
        float c = first + (float)i * step;
        int i0 = (int)floorf(c);
        int w = (int)((c - (float)i0) * 256.0f + 0.5f);
        if (i0 < 0) {
            i0 = 0;
            w = 0;
        }
        if (i0 >= size - 1) {
            i0 = size - 1;
            w = 0;
        }
        taps[i].i0 = i0;
        taps[i].i1 = i0 + 1 < size ? i0 + 1 : i0;
        taps[i].w = w;
    }
}

/* Cuts the long side of an image that is much wider or taller than the
 * frame down to what the camera can show, centred, so the scaled copy
 * stays a few frames in size. Works on the stored picture; `swapped`
 * says its sides swap once it is turned upright. */
static void crop_to_slack(AVFrame *image, bool swapped, double frame_aspect,
                          double slack)
{
    int upright_w = swapped ? image->height : image->width;
    int upright_h = swapped ? image->width : image->height;
    double aspect = (double)upright_w / upright_h;
    int keep_w = upright_w, keep_h = upright_h;
    if (aspect > frame_aspect * slack)
        keep_w = (int)fmax(1, upright_h * frame_aspect * slack);
    else if (aspect < frame_aspect / slack)
        keep_h = (int)fmax(1, upright_w / frame_aspect * slack);
    int cut_x = (swapped ? upright_h - keep_h : upright_w - keep_w);
    int cut_y = (swapped ? upright_w - keep_w : upright_h - keep_h);
    image->crop_left = (size_t)cut_x / 2;
    image->crop_right = (size_t)(cut_x - cut_x / 2);
    image->crop_top = (size_t)cut_y / 2;
    image->crop_bottom = (size_t)(cut_y - cut_y / 2);
    /* Bit-packed formats are only cut on the right and at the bottom;
     * slightly off-centre beats failing. */
    av_frame_apply_cropping(image, AV_FRAME_CROP_UNALIGNED);
}

/* ---- converting and scaling ----------------------------------------- */

/* The yuvj formats are full-range aliases swscale warns about; it wants
 * the plain format and the range said separately. */
static enum AVPixelFormat plain_format(enum AVPixelFormat format, bool *full)
{
    switch (format) {
    case AV_PIX_FMT_YUVJ420P:
        *full = true;
        return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
        *full = true;
        return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
        *full = true;
        return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
        *full = true;
        return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
        *full = true;
        return AV_PIX_FMT_YUV411P;
    default:
        return format;
    }
}

/* A converter from w x h pixels to out_w x out_h. Downscaling uses
 * Lanczos for detail. Upscaling uses the Mitchell-Netravali cubic
 * (B = C = 1/3): swscale's default cubic rings, and a small image
 * magnified ten times would show every hard edge with a dark halo. */
static struct SwsContext *make_scaler(struct SwsContext *reuse, int w, int h,
                                      enum AVPixelFormat from, int out_w,
                                      int out_h, enum AVPixelFormat to)
{
    static const double mitchell[2] = {1.0 / 3, 1.0 / 3};
    bool down = out_w < w || out_h < h;
    return sws_getCachedContext(reuse, w, h, from, out_w, out_h, to,
                                (down ? SWS_LANCZOS : SWS_BICUBIC) |
                                    SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT |
                                    SWS_FULL_CHR_H_INP,
                                NULL, NULL, down ? NULL : mitchell);
}

/* The same for a decoded image's pixels (w x h of them), honouring its
 * range and matrix. */
static struct SwsContext *make_image_scaler(struct SwsContext *reuse,
                                            const AVFrame *image, int w, int h,
                                            int out_w, int out_h,
                                            enum AVPixelFormat to)
{
    bool full = image->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat from = plain_format(image->format, &full);
    struct SwsContext *sws = make_scaler(reuse, w, h, from, out_w, out_h, to);
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(from);
    if (sws == NULL || desc == NULL || (desc->flags & AV_PIX_FMT_FLAG_RGB) ||
        desc->nb_components < 3)
        return sws;
    /* Only YUV needs a matrix and a range; swscale's defaults for grey
     * (full range) and RGB are right. */
    int space =
        image->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
    sws_setColorspaceDetails(sws, sws_getCoefficients(space), full,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                             1 << 16, 1 << 16);
    return sws;
}

/* The planes of rows [y0, ...) of an image, as a picture of its own. */
static void strip_planes(const AVFrame *image, int y0, const uint8_t *out[4])
{
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(image->format);
    for (int p = 0; p < 4; p++) {
        out[p] = image->data[p];
        if (out[p] == NULL || ((desc->flags & AV_PIX_FMT_FLAG_PAL) && p == 1))
            continue;
        int shift = p == 1 || p == 2 ? desc->log2_chroma_h : 0;
        out[p] += (ptrdiff_t)(y0 >> shift) * image->linesize[p];
    }
}

/* Feeds `image` to `visit` as RGBA strips of STRIP_ROWS rows; returns -1
 * when the pixel format cannot be converted. */
typedef void (*strip_visitor)(void *opaque, const uint8_t *rgba, int y0,
                              int rows);

static int visit_strips(const AVFrame *image, uint8_t *rgba,
                        strip_visitor visit, void *opaque)
{
    struct SwsContext *sws = NULL;
    int w = image->width;
    for (int y0 = 0; y0 < image->height; y0 += STRIP_ROWS) {
        int rows =
            image->height - y0 < STRIP_ROWS ? image->height - y0 : STRIP_ROWS;
        sws = make_image_scaler(sws, image, w, rows, w, rows, AV_PIX_FMT_RGBA);
        if (sws == NULL)
            return -1;
        const uint8_t *src[4];
        strip_planes(image, y0, src);
        uint8_t *dst[4] = {rgba, NULL, NULL, NULL};
        int dst_stride[4] = {w * 4, 0, 0, 0};
        sws_scale(sws, src, image->linesize, 0, rows, dst, dst_stride);
        visit(opaque, rgba, y0, rows);
    }
    sws_freeContext(sws);
    return 0;
}

/* ---- the backdrop behind see-through pixels ------------------------- */

/* Sums of alpha and alpha-weighted colour per backdrop cell. */
typedef struct coverage {
    int w, h;
    int columns, rows;
    int *cell_of_x;
    double *sums; /* columns x rows x (a, ar, ag, ab) */
    bool see_through;
} coverage;

static void measure_strip(void *opaque, const uint8_t *rgba, int y0, int rows)
{
    coverage *c = opaque;
    for (int y = y0; y < y0 + rows; y++) {
        const uint8_t *px = rgba + (size_t)(y - y0) * c->w * 4;
        double *row = c->sums + (size_t)(y * c->rows / c->h) * c->columns * 4;
        for (int x = 0; x < c->w; x++, px += 4) {
            if (px[3] < 255)
                c->see_through = true;
            double *s = row + (size_t)c->cell_of_x[x] * 4;
            double a = px[3];
            s[0] += a;
            s[1] += a * px[0];
            s[2] += a * px[1];
            s[3] += a * px[2];
        }
    }
}

/* A [1 2 1] blur of the cell sums along one axis, edges clamped: n cells
 * `stride` cells apart, for each of `lines` lines starting `pitch` cells
 * apart. */
static void blur_cells(double *sums, int n, int stride, int lines, int pitch,
                       double *tmp)
{
    for (int line = 0; line < lines; line++) {
        double *first = sums + (size_t)line * pitch * 4;
        for (int i = 0; i < n; i++) {
            const double *prev =
                first + (size_t)(i > 0 ? i - 1 : 0) * stride * 4;
            const double *here = first + (size_t)i * stride * 4;
            const double *next =
                first + (size_t)(i < n - 1 ? i + 1 : i) * stride * 4;
            for (int k = 0; k < 4; k++)
                tmp[(size_t)i * 4 + k] =
                    0.25 * prev[k] + 0.5 * here[k] + 0.25 * next[k];
        }
        for (int i = 0; i < n; i++)
            memcpy(first + (size_t)i * stride * 4, tmp + (size_t)i * 4,
                   4 * sizeof(double));
    }
}

/* Turns the sums into colours: the blurred image, pulled towards a
 * seed-coloured tone that is light behind dark content and dark behind
 * light content, so a black logo on a transparent page stays readable. */
static void tone_backdrop(const coverage *c, uint64_t *state, backdrop *bd)
{
    double total[4] = {0, 0, 0, 0};
    size_t cells = (size_t)c->columns * c->rows;
    for (size_t i = 0; i < cells; i++)
        for (int k = 0; k < 4; k++)
            total[k] += c->sums[i * 4 + k];
    float mean[3] = {0.5f, 0.5f, 0.5f};
    if (total[0] > 0)
        for (int k = 0; k < 3; k++)
            mean[k] = (float)(total[k + 1] / total[0] / 255.0);
    float luma = KR * mean[0] + KG * mean[1] + KB * mean[2];
    float tone[3];
    /* One draw per statement: argument evaluation order is unspecified
     * in C (this is the order GCC used, so seeds keep their tones). */
    float sat = vg_random_between(state, 0.15f, 0.3f);
    float hue = vg_random_between(state, 0, 1);
    hsv(hue, sat, luma < 0.5f ? 0.9f : 0.16f, tone);
    for (size_t i = 0; i < cells; i++) {
        const double *s = c->sums + i * 4;
        for (int k = 0; k < 3; k++) {
            /* Cells far from any opaque pixel take the mean colour. */
            float own = s[0] > total[0] * 1e-4 / (double)cells
                            ? (float)(s[k + 1] / s[0] / 255.0)
                            : mean[k];
            bd->rgb[i * 3 + k] = own + (tone[k] - own) * BACKDROP_TONE;
        }
    }
}

/* Composites strips over the backdrop and feeds them to the scaler. */
typedef struct compositor {
    const backdrop *backdrop;
    int w, h;
    tap *columns; /* per x: backdrop columns and weight */
    float *row;   /* backdrop colours of the current row, per column */
    uint8_t *rgb; /* one strip, opaque */
    struct SwsContext *scaler;
    uint8_t *out;
    int out_stride;
} compositor;

static void composite_strip(void *opaque, const uint8_t *rgba, int y0,
                            int rows)
{
    compositor *c = opaque;
    const backdrop *bd = c->backdrop;
    for (int y = y0; y < y0 + rows; y++) {
        float fy = ((float)y + 0.5f) * (float)bd->rows / (float)c->h - 0.5f;
        fy = fminf(fmaxf(fy, 0), (float)(bd->rows - 1));
        int r0 = (int)fy, r1 = r0 + 1 < bd->rows ? r0 + 1 : r0;
        float wy = fy - (float)r0;
        for (int i = 0; i < bd->columns * 3; i++) {
            float a = bd->rgb[(size_t)r0 * bd->columns * 3 + i];
            float b = bd->rgb[(size_t)r1 * bd->columns * 3 + i];
            c->row[i] = 255.0f * (a + (b - a) * wy);
        }
        const uint8_t *px = rgba + (size_t)(y - y0) * c->w * 4;
        uint8_t *out = c->rgb + (size_t)(y - y0) * c->w * 3;
        for (int x = 0; x < c->w; x++, px += 4, out += 3) {
            const tap t = c->columns[x];
            float a = px[3] / 255.0f, wx = (float)t.w / 256.0f;
            for (int k = 0; k < 3; k++) {
                float b0 = c->row[t.i0 * 3 + k], b1 = c->row[t.i1 * 3 + k];
                float back = b0 + (b1 - b0) * wx;
                out[k] = (uint8_t)(back + ((float)px[k] - back) * a + 0.5f);
            }
        }
    }
    const uint8_t *src[4] = {c->rgb, NULL, NULL, NULL};
    int stride[4] = {c->w * 3, 0, 0, 0};
    uint8_t *dst[4] = {c->out, NULL, NULL, NULL};
    int dst_stride[4] = {c->out_stride, 0, 0, 0};
    sws_scale(c->scaler, src, stride, y0, rows, dst, dst_stride);
}

/* Scales a see-through image to RGB24 out_w x out_h, composited over its
 * backdrop at full resolution (compositing after scaling would darken
 * every edge with the colour of the invisible pixels). Returns 1 when the
 * image turned out to be opaque and nothing was done, 0 when done, -1
 * with err filled, -2 when swscale cannot convert the pixel format. */
static int scale_see_through(const AVFrame *image, uint64_t *state,
                             uint8_t *out, int out_w, int out_h, vg_error *err)
{
    int w = image->width, h = image->height, ret = -1;
    coverage cov = {.w = w, .h = h};
    cov.rows = h < BACKDROP_ROWS ? h : BACKDROP_ROWS;
    cov.columns = (int)lround((double)cov.rows * w / h);
    cov.columns = cov.columns < 1 ? 1 : cov.columns;
    cov.columns = cov.columns > BACKDROP_MAX_COLUMNS ? BACKDROP_MAX_COLUMNS
                  : cov.columns > w                  ? w
                                                     : cov.columns;
    size_t cells = (size_t)cov.columns * cov.rows;
    int longest = cov.columns > cov.rows ? cov.columns : cov.rows;
    cov.cell_of_x = malloc(sizeof(int) * (size_t)w);
    cov.sums = calloc(cells * 4, sizeof(double));
    double *tmp = malloc(sizeof(double) * 4 * (size_t)longest);
    uint8_t *rgba = malloc((size_t)w * STRIP_ROWS * 4);
    backdrop bd = {cov.columns, cov.rows, malloc(sizeof(float) * cells * 3)};
    compositor comp = {
        .backdrop = &bd,
        .w = w,
        .h = h,
        .columns = malloc(sizeof(tap) * (size_t)w),
        .row = malloc(sizeof(float) * 3 * (size_t)cov.columns),
        .rgb = malloc((size_t)w * STRIP_ROWS * 3),
        .out = out,
        .out_stride = out_w * 3,
    };
    if (cov.cell_of_x == NULL || cov.sums == NULL || tmp == NULL ||
        rgba == NULL || bd.rgb == NULL || comp.columns == NULL ||
        comp.row == NULL || comp.rgb == NULL) {
        out_of_memory(err);
        goto done;
    }
    for (int x = 0; x < w; x++)
        cov.cell_of_x[x] = (int)((int64_t)x * cov.columns / w);
    if (visit_strips(image, rgba, measure_strip, &cov) < 0)
        goto unsupported;
    if (!cov.see_through) {
        ret = 1;
        goto done;
    }
    for (int pass = 0; pass < 3; pass++) {
        blur_cells(cov.sums, cov.columns, 1, cov.rows, cov.columns, tmp);
        blur_cells(cov.sums, cov.rows, cov.columns, cov.columns, 1, tmp);
    }
    tone_backdrop(&cov, state, &bd);
    make_taps(comp.columns, w, 0.5f * (float)cov.columns / (float)w - 0.5f,
              (float)cov.columns / (float)w, cov.columns);
    comp.scaler = make_scaler(NULL, w, h, AV_PIX_FMT_RGB24, out_w, out_h,
                              AV_PIX_FMT_RGB24);
    if (comp.scaler == NULL ||
        visit_strips(image, rgba, composite_strip, &comp) < 0)
        goto unsupported;
    ret = 0;
    goto done;
unsupported:
    ret = -2;
done:
    sws_freeContext(comp.scaler);
    free(cov.cell_of_x);
    free(cov.sums);
    free(tmp);
    free(rgba);
    free(bd.rgb);
    free(comp.columns);
    free(comp.row);
    free(comp.rgb);
    return ret;
}

/* Turns the scaled RGB picture (stored orientation, sw x sh) upright into
 * the slide's YUV planes, one 2x2 block (one chroma sample) at a time. */
static void fill_slide(slide *s, const uint8_t *rgb, int sw, int sh,
                       int orientation)
{
    stored_at m = orientation_map(orientation, sw, sh);
    for (int y = 0; y < s->h; y += 2) {
        for (int x = 0; x < s->w; x += 2) {
            float sum_r = 0, sum_g = 0, sum_b = 0;
            for (int k = 0; k < 4; k++) {
                int ux = x + k % 2, uy = y + k / 2;
                int sx = m.ax * ux + m.bx * uy + m.cx;
                int sy = m.ay * ux + m.by * uy + m.cy;
                const uint8_t *px = rgb + ((size_t)sy * sw + sx) * 3;
                float r = px[0] / 255.0f, g = px[1] / 255.0f;
                float b = px[2] / 255.0f;
                s->y[(size_t)uy * s->w + ux] = luma_of(r, g, b);
                sum_r += r;
                sum_g += g;
                sum_b += b;
            }
            size_t c = (size_t)(y / 2) * (s->w / 2) + x / 2;
            chroma_of(sum_r / 4, sum_g / 4, sum_b / 4, &s->u[c], &s->v[c]);
        }
    }
}

/* Decodes one image into a slide that covers the frame at base_zoom with
 * room to pan; only the slide is kept. */
static int load_slide(vg_picture_source *src, slide *s, const image_ref *ref,
                      uint64_t *state, vg_error *err)
{
    oriented image = {0};
    if (decode_image(ref, &image, err) < 0)
        return -1;
    AVFrame *frame = image.frame;
    bool swapped = swaps_sides(image.orientation);
    double frame_aspect = (double)src->width / src->height;
    crop_to_slack(frame, swapped, frame_aspect,
                  src->camera_fixed ? 1.0 : PAN_SLACK);

    /* Sides once upright, then the scale that covers the frame. */
    int upright_w = swapped ? frame->height : frame->width;
    int upright_h = swapped ? frame->width : frame->height;
    double need_w = (double)src->width * src->base_zoom;
    double need_h = (double)src->height * src->base_zoom;
    double scale = fmax(need_w / upright_w, need_h / upright_h);
    s->w = even_up(fmax(upright_w * scale, need_w));
    s->h = even_up(fmax(upright_h * scale, need_h));
    int sw = swapped ? s->h : s->w, sh = swapped ? s->w : s->h;

    int ret = -1;
    uint8_t *rgb = malloc((size_t)sw * sh * 3);
    s->y = malloc((size_t)s->w * s->h);
    s->u = malloc((size_t)s->w * s->h / 4);
    s->v = malloc((size_t)s->w * s->h / 4);
    if (rgb == NULL || s->y == NULL || s->u == NULL || s->v == NULL) {
        out_of_memory(err);
        goto done;
    }
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(frame->format);
    int scaled = 1;
    if (desc->flags & AV_PIX_FMT_FLAG_ALPHA)
        scaled = scale_see_through(frame, state, rgb, sw, sh, err);
    if (scaled == -1)
        goto done;
    struct SwsContext *sws = NULL;
    if (scaled == 1)
        sws = make_image_scaler(NULL, frame, frame->width, frame->height, sw,
                                sh, AV_PIX_FMT_RGB24);
    if (scaled == -2 || (scaled == 1 && sws == NULL)) {
        refuse(err, ref, "has pixels of a kind (%s) that cannot be converted",
               av_get_pix_fmt_name(frame->format));
        goto done;
    }
    if (scaled == 1) {
        uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
        int dst_stride[4] = {sw * 3, 0, 0, 0};
        sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                  frame->height, dst, dst_stride);
        sws_freeContext(sws);
    }
    fill_slide(s, rgb, sw, sh, image.orientation);
    ret = 0;
done:
    free(rgb);
    av_frame_free(&image.frame);
    return ret;
}

/* ---- the sequence --------------------------------------------------- */

static void invent_path(const vg_picture_source *src, slide *s,
                        uint64_t *state)
{
    s->zoom0 = s->zoom1 = 1;
    if (src->camera_fixed)
        return;
    /* A push in or a pull out, and a drift from one side of what the
     * crop leaves to (part of the way to) the other. */
    float deep = vg_random_between(state, 1.12f, PAN_ZOOM);
    float shallow = vg_random_between(state, 1.0f, 1.04f);
    bool push_in = vg_random_next(state) & 1;
    s->zoom0 = push_in ? shallow : deep;
    s->zoom1 = push_in ? deep : shallow;
    float direction = vg_random_between(state, 0, TAU);
    float reach = vg_random_between(state, 0.6f, 1.0f);
    s->pan_x0 = reach * cosf(direction);
    s->pan_y0 = reach * sinf(direction);
    float back = vg_random_between(state, 0.3f, 1.0f);
    float turn = vg_random_between(state, -0.5f, 0.5f);
    s->pan_x1 = -back * cosf(direction + turn);
    s->pan_y1 = -back * sinf(direction + turn);
}

/* Lays the slides out on the clip: equal shares, each overlapping the
 * next by one crossfade. The crossfade is capped so every image is also
 * seen alone for at least half its share. */
static void lay_out(vg_picture_source *src)
{
    int n = src->n_slides;
    float frames = (float)src->frames;
    float fade = TRANSITION_SECONDS * (float)src->fps;
    float cap = frames / (float)(2 * (n + 1));
    src->transition = n > 1 ? fminf(fade, cap) : 0;
    float share = (frames + (float)(n - 1) * src->transition) / (float)n;
    for (int i = 0; i < n; i++) {
        slide *s = &src->slides[i];
        s->start = (float)i * (share - src->transition);
        s->end = i == n - 1 ? frames : s->start + share;
        s->ease_in = i == 0;
        s->ease_out = i == n - 1;
    }
}

/* How far through its move a slide is at time t (frames): eased where the
 * clip starts and ends, steady across crossfades so motion never stalls
 * mid-clip. */
static float slide_progress(const slide *s, float t)
{
    float u = (t - s->start) / (s->end - s->start);
    u = fminf(fmaxf(u, 0), 1);
    if (s->ease_in && s->ease_out)
        return u * u * (3 - 2 * u);
    if (s->ease_in)
        return u * u * (2 - u);
    if (s->ease_out)
        return u * (1 + u - u * u);
    return u;
}

/* ---- drawing -------------------------------------------------------- */

static float lerp(float a, float b, float t)
{
    return a + (b - a) * t;
}

static void sample_plane(const uint8_t *plane, int plane_w, const tap *cols,
                         int n_cols, tap row, uint8_t *out)
{
    const uint8_t *p0 = plane + (size_t)row.i0 * plane_w;
    const uint8_t *p1 = plane + (size_t)row.i1 * plane_w;
    for (int x = 0; x < n_cols; x++) {
        const tap c = cols[x];
        int a = p0[c.i0] * (256 - c.w) + p0[c.i1] * c.w;
        int b = p1[c.i0] * (256 - c.w) + p1[c.i1] * c.w;
        out[x] = (uint8_t)((a * (256 - row.w) + b * row.w + 32768) >> 16);
    }
}

/* Draws slide s as the camera sees it at time t into YUV420P planes. */
static void draw_slide(vg_picture_source *src, const slide *s, float t,
                       uint8_t *const planes[3], const int linesize[3])
{
    float e = slide_progress(s, t);
    float zoom = lerp(s->zoom0, s->zoom1, e);
    /* The slide covers the frame at base_zoom; zooming in shows less. */
    float step = src->base_zoom / zoom;
    float win_w = (float)src->width * step;
    float win_h = (float)src->height * step;
    float cx = 0.5f * (float)s->w +
               lerp(s->pan_x0, s->pan_x1, e) * 0.5f * ((float)s->w - win_w);
    float cy = 0.5f * (float)s->h +
               lerp(s->pan_y0, s->pan_y1, e) * 0.5f * ((float)s->h - win_h);
    float left = cx - 0.5f * win_w, top = cy - 0.5f * win_h;

    int w = src->width, h = src->height;
    tap *cols = src->luma_taps, *chroma_cols = src->chroma_taps;
    make_taps(cols, w, left + 0.5f * step - 0.5f, step, s->w);
    make_taps(chroma_cols, w / 2, 0.5f * (left + step) - 0.5f, step, s->w / 2);
    for (int y = 0; y < h; y++) {
        tap row;
        make_taps(&row, 1, top + ((float)y + 0.5f) * step - 0.5f, step, s->h);
        sample_plane(s->y, s->w, cols, w, row,
                     planes[0] + (ptrdiff_t)y * linesize[0]);
    }
    for (int y = 0; y < h / 2; y++) {
        tap row;
        make_taps(&row, 1, 0.5f * (top + (float)(2 * y + 1) * step) - 0.5f,
                  step, s->h / 2);
        sample_plane(s->u, s->w / 2, chroma_cols, w / 2, row,
                     planes[1] + (ptrdiff_t)y * linesize[1]);
        sample_plane(s->v, s->w / 2, chroma_cols, w / 2, row,
                     planes[2] + (ptrdiff_t)y * linesize[2]);
    }
}

/* out = out + (in - out) * weight / 256, for one plane. */
static void blend_plane(uint8_t *out, int out_linesize, const uint8_t *in,
                        int in_linesize, int w, int h, int weight)
{
    for (int y = 0; y < h; y++) {
        uint8_t *o = out + (ptrdiff_t)y * out_linesize;
        const uint8_t *i = in + (ptrdiff_t)y * in_linesize;
        for (int x = 0; x < w; x++)
            o[x] =
                (uint8_t)((o[x] * (256 - weight) + i[x] * weight + 128) >> 8);
    }
}

/* Per-axis falloff of the drifting light, in 1/256. */
static void make_light(int *out, int n, float centre, float sigma)
{
    for (int i = 0; i < n; i++) {
        float d = ((float)i + 0.5f - centre) / sigma;
        out[i] = (int)(256.0f * expf(-d * d) + 0.5f);
    }
}

/* The fixed camera's only motion: a soft light wandering slowly over the
 * picture, so the clip is alive without anything in it moving. */
static void draw_light(vg_picture_source *src, int index, AVFrame *frame)
{
    int w = src->width, h = src->height;
    float t = (float)index / (float)src->fps;
    make_light(src->light_x, w,
               (float)w *
                   (0.5f + 0.35f * sinf(src->light_w * t + src->light_phase)),
               0.4f * (float)h);
    make_light(src->light_y, h,
               (float)h * (0.5f + 0.3f * sinf(0.7f * src->light_w * t)),
               0.4f * (float)h);
    for (int y = 0; y < h; y++) {
        uint8_t *line = frame->data[0] + (ptrdiff_t)y * frame->linesize[0];
        int ly = src->light_y[y];
        for (int x = 0; x < w; x++) {
            /* Up to 24 luma steps brighter under the light's centre. */
            int v = line[x] + ((24 * ly * src->light_x[x]) >> 16);
            line[x] = (uint8_t)(v > 235 ? 235 : v);
        }
    }
}

/* ---- the source ----------------------------------------------------- */

vg_picture_source *vg_picture_source_new(const vg_render_params *params,
                                         vg_error *err)
{
    vg_picture_source *src = calloc(1, sizeof(*src));
    if (src == NULL) {
        out_of_memory(err);
        return NULL;
    }
    src->width = params->width;
    src->height = params->height;
    src->fps = params->fps;
    src->frames = params->fps * params->duration;
    src->camera_fixed = params->camera_fixed;
    src->base_zoom = src->camera_fixed ? 1.0f : PAN_ZOOM;
    src->n_slides = params->n_images < VG_PICTURE_MAX_IMAGES
                        ? params->n_images
                        : VG_PICTURE_MAX_IMAGES;

    size_t luma = (size_t)src->width * src->height;
    src->under[0] = malloc(luma + luma / 2);
    src->luma_taps = malloc(sizeof(tap) * (size_t)src->width);
    src->chroma_taps = malloc(sizeof(tap) * (size_t)src->width / 2);
    src->light_x = malloc(sizeof(int) * (size_t)src->width);
    src->light_y = malloc(sizeof(int) * (size_t)src->height);
    if (src->n_slides < 1 || params->images == NULL) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "the picture source needs at least one image");
        goto fail;
    }
    if (src->under[0] == NULL || src->luma_taps == NULL ||
        src->chroma_taps == NULL || src->light_x == NULL ||
        src->light_y == NULL) {
        out_of_memory(err);
        goto fail;
    }
    src->under[1] = src->under[0] + luma;
    src->under[2] = src->under[1] + luma / 4;
    src->under_linesize[0] = src->width;
    src->under_linesize[1] = src->under_linesize[2] = src->width / 2;

    for (int i = 0; i < src->n_slides; i++) {
        image_ref ref = {params->images[i], i + 1, src->n_slides};
        uint64_t state = stream_for(params->seed, i);
        invent_path(src, &src->slides[i], &state);
        if (load_slide(src, &src->slides[i], &ref, &state, err) < 0)
            goto fail;
    }
    lay_out(src);
    uint64_t state = stream_for(params->seed, -1);
    src->light_w = TAU * vg_random_between(&state, 0.06f, 0.12f);
    src->light_phase = vg_random_between(&state, 0, TAU);
    return src;
fail:
    vg_picture_source_free(src);
    return NULL;
}

void vg_picture_source_draw(vg_picture_source *source, int index,
                            AVFrame *frame)
{
    /* Motion and fades are timed at the middle of the frame. */
    float t = (float)index + 0.5f;
    int current = 0;
    while (current < source->n_slides - 1 && t >= source->slides[current].end)
        current++;
    draw_slide(source, &source->slides[current], t, frame->data,
               frame->linesize);

    const slide *next =
        current + 1 < source->n_slides ? &source->slides[current + 1] : NULL;
    if (next != NULL && t > next->start) {
        float u = (t - next->start) / source->transition;
        u = fminf(fmaxf(u, 0), 1);
        int weight = (int)(256.0f * u * u * (3 - 2 * u) + 0.5f);
        draw_slide(source, next, t, source->under, source->under_linesize);
        int w = source->width, h = source->height;
        blend_plane(frame->data[0], frame->linesize[0], source->under[0], w, w,
                    h, weight);
        for (int p = 1; p < 3; p++)
            blend_plane(frame->data[p], frame->linesize[p], source->under[p],
                        w / 2, w / 2, h / 2, weight);
    }
    if (source->camera_fixed)
        draw_light(source, index, frame);
}

void vg_picture_source_free(vg_picture_source *source)
{
    if (source == NULL)
        return;
    for (int i = 0; i < VG_PICTURE_MAX_IMAGES; i++) {
        free(source->slides[i].y);
        free(source->slides[i].u);
        free(source->slides[i].v);
    }
    free(source->under[0]);
    free(source->luma_taps);
    free(source->chroma_taps);
    free(source->light_x);
    free(source->light_y);
    free(source);
}
