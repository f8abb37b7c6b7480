/*
 * request_images.c - a request's reference images: every image, whether
 * a multipart upload, a data: URL or a fetched image URL, becomes a file
 * on disk through vg_request_add_image and meets the same limits (count,
 * size, a real PNG, JPEG or WebP). See request_internal.h.
 */
#include "core/request_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crypto.h"
#include "util/dirs.h"
#include "util/parse.h"

/* ---- images ---------------------------------------------------------- */

vg_image_type vg_image_sniff(const unsigned char *bytes, size_t n)
{
    if (n >= 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0)
        return VG_IMAGE_PNG;
    if (n >= 3 && memcmp(bytes, "\xff\xd8\xff", 3) == 0)
        return VG_IMAGE_JPEG;
    if (n >= 12 && memcmp(bytes, "RIFF", 4) == 0 &&
        memcmp(bytes + 8, "WEBP", 4) == 0)
        return VG_IMAGE_WEBP;
    return VG_IMAGE_NONE;
}

const char *vg_image_mime(vg_image_type type)
{
    switch (type) {
    case VG_IMAGE_PNG:
        return "image/png";
    case VG_IMAGE_JPEG:
        return "image/jpeg";
    case VG_IMAGE_WEBP:
        return "image/webp";
    default:
        return "application/octet-stream";
    }
}

static const char *image_extension(vg_image_type type)
{
    switch (type) {
    case VG_IMAGE_PNG:
        return "png";
    case VG_IMAGE_JPEG:
        return "jpg";
    case VG_IMAGE_WEBP:
        return "webp";
    default:
        return "bin";
    }
}

int req_max_images(const vg_limits *limits)
{
    int n = limits->max_images;
    if (n < 0)
        n = 0;
    return n > VG_MAX_IMAGES ? VG_MAX_IMAGES : n;
}

static int too_many_images(const vg_limits *limits, vg_error *err)
{
    return vg_error_set(err, 413, "too_many_files", "files",
                        "at most %d reference images are accepted per "
                        "request",
                        req_max_images(limits));
}

static int image_too_large(const vg_limits *limits, int64_t size,
                           vg_error *err)
{
    return vg_error_set(err, 413, "file_too_large", "files",
                        "a reference image is %" PRId64 " bytes; the limit "
                        "is %" PRId64 " bytes",
                        size, limits->max_image_bytes);
}

static int not_an_image(vg_error *err)
{
    return vg_error_set(err, 415, "unsupported_file_type", "files",
                        "reference images must be PNG, JPEG or WebP files");
}

/*
 * The request owns the file from this call on, whether or not it is
 * accepted: a refused file is deleted here, so no error path of the caller
 * can leave an upload behind in the temporary directory.
 */
int vg_request_add_image(vg_video_request *req, const vg_limits *limits,
                         const char *path, vg_arena *arena, vg_error *err)
{
    if (limits == NULL)
        limits = &req_default_limits;
    if (req->n_images >= req_max_images(limits)) {
        unlink(path);
        return too_many_images(limits, err);
    }

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vg_error_set(err, 500, "internal_error", "files",
                     "could not open the uploaded image: %s", strerror(errno));
        unlink(path);
        return -1;
    }
    struct stat st;
    unsigned char head[16];
    ssize_t got = -1;
    if (fstat(fd, &st) == 0)
        got = read(fd, head, sizeof(head));
    close(fd);
    if (got < 0) {
        vg_error_set(err, 500, "internal_error", "files",
                     "could not read the uploaded image: %s", strerror(errno));
        unlink(path);
        return -1;
    }
    if ((int64_t)st.st_size > limits->max_image_bytes) {
        unlink(path);
        return image_too_large(limits, (int64_t)st.st_size, err);
    }
    vg_image_type type = vg_image_sniff(head, (size_t)got);
    if (type == VG_IMAGE_NONE) {
        unlink(path);
        return not_an_image(err);
    }

    vg_image *img = &req->images[req->n_images++];
    img->path = vg_arena_strdup(arena, path);
    img->type = type;
    img->size = (int64_t)st.st_size;
    return 0;
}

void vg_request_cleanup(vg_video_request *req)
{
    if (req == NULL)
        return;
    for (int i = 0; i < req->n_images && i < VG_MAX_IMAGES; i++) {
        if (req->images[i].path != NULL)
            unlink(req->images[i].path);
        req->images[i].path = NULL;
    }
    req->n_images = 0;
}

static int write_temp_image(const char *tmp_dir, vg_image_type type,
                            const unsigned char *bytes, size_t n, char *path,
                            size_t path_size, vg_error *err)
{
    char uuid[37];
    vg_uuid_v4(uuid);
    snprintf(path, path_size, "%s/%s.%s", tmp_dir, uuid,
             image_extension(type));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return vg_error_set(err, 500, "internal_error", "files",
                            "could not store the reference image: %s",
                            strerror(errno));
    if (vg_write_all(fd, bytes, n) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return vg_error_set(err, 500, "internal_error", "files",
                            "could not store the reference image: %s",
                            strerror(e));
    }
    if (close(fd) != 0) {
        unlink(path);
        return vg_error_set(err, 500, "internal_error", "files",
                            "could not store the reference image");
    }
    return 0;
}

/* Bytes beyond the per-image limit would be refused anyway; a fetch
 * stops there instead of after it. */
vg_fetch_limits req_fetch_limits(const vg_limits *limits)
{
    vg_fetch_limits fetch = limits->image_fetch;
    if (fetch.max_bytes <= 0 || fetch.max_bytes > limits->max_image_bytes)
        fetch.max_bytes = limits->max_image_bytes;
    return fetch;
}

bool req_is_image_url(const char *url)
{
    return strncasecmp(url, "https://", 8) == 0 ||
           strncasecmp(url, "http://", 7) == 0;
}

/* An image URL: fetched into tmp_dir under the operator's fetch limits
 * (see fetch.h), here or beforehand, then accepted or refused by the
 * same checks as an upload, so the bytes decide, not the URL or its
 * Content-Type. */
static int add_fetched_image(vg_video_request *req, const vg_limits *limits,
                             const char *url, size_t index,
                             const char *tmp_dir, const url_source *source,
                             vg_arena *arena, vg_error *err)
{
    if (tmp_dir == NULL || *tmp_dir == '\0')
        return vg_error_set(err, 500, "internal_error", "files",
                            "no temporary directory for reference images");
    vg_fetch_limits fetch = req_fetch_limits(limits);
    char path[4096];
    const char *fetched = path;
    int rc =
        vg_fetch_task_take(source->fetched, (int)index, url, &fetched, err);
    if (rc == 1 && source->may_fetch) {
        char uuid[37];
        vg_uuid_v4(uuid);
        snprintf(path, sizeof(path), "%s/fetch-%s", tmp_dir, uuid);
        rc = vg_fetch_image(url, &fetch, path, err);
    } else if (rc == 1) {
        /* Not planned: it fails the checks that need no network (the
         * plan stops at such a URL), or the caller broke the contract. */
        rc = vg_fetch_check_url(url, &fetch, err);
        if (rc == 0)
            return vg_error_set(err, 500, "internal_error", "files",
                                "files[%zu]: the image URL was not fetched",
                                index);
    }
    if (rc != 0) {
        char message[sizeof(err->message)];
        snprintf(message, sizeof(message), "%s", err->message);
        snprintf(err->message, sizeof(err->message), "files[%zu]: %.470s",
                 index, message);
        return -1;
    }
    return vg_request_add_image(req, limits, fetched, arena, err);
}

/* One element of a JSON "files" value: a data: URL becomes a file in
 * tmp_dir, and so does an image URL where the operator allows fetching;
 * anything else is refused with a message saying what to send. */
static int add_data_url(vg_video_request *req, const vg_limits *limits,
                        const char *url, size_t index, const char *tmp_dir,
                        const url_source *source, vg_arena *arena,
                        vg_error *err)
{
    if (req_is_image_url(url)) {
        if (limits->allow_image_urls)
            return add_fetched_image(req, limits, url, index, tmp_dir, source,
                                     arena, err);
        return vg_error_set(err, 422, "validation_error", "files",
                            "files[%zu]: fetching image URLs is not enabled "
                            "on this server; send the image as a multipart "
                            "\"files\" part or as a data: URL",
                            index);
    }
    if (strncasecmp(url, "data:", 5) != 0)
        return vg_error_set(
            err, 422, "validation_error", "files",
            "files[%zu] must be a data: URL such as "
            "data:image/png;base64,...%s",
            index,
            limits->allow_image_urls ? ", or an https:// image URL" : "");
    const char *comma = strchr(url, ',');
    const char *meta = url + 5;
    if (comma == NULL || comma - meta < 7 ||
        strncasecmp(comma - 7, ";base64", 7) != 0)
        return vg_error_set(err, 422, "validation_error", "files",
                            "files[%zu] must be a base64 data: URL such as "
                            "data:image/png;base64,...",
                            index);

    /* The declared media type is not trusted either way: the bytes decide
     * (a mislabelled JPEG is still a JPEG, and a "PNG" of text is not). */
    const char *payload = comma + 1;
    size_t len = strlen(payload);
    unsigned char *bytes = malloc(len / 4 * 3 + 3);
    size_t n = 0;
    if (bytes == NULL)
        return vg_error_set(err, 500, "internal_error", "files",
                            "out of memory decoding files[%zu]", index);
    if (vg_base64_decode(payload, len, bytes, len * 3 / 4 + 3, &n) != 0) {
        free(bytes);
        return vg_error_set(err, 422, "validation_error", "files",
                            "files[%zu] is not valid base64", index);
    }
    if ((int64_t)n > limits->max_image_bytes) {
        free(bytes);
        return image_too_large(limits, (int64_t)n, err);
    }
    vg_image_type type = vg_image_sniff(bytes, n);
    if (type == VG_IMAGE_NONE) {
        free(bytes);
        return not_an_image(err);
    }
    if (tmp_dir == NULL || *tmp_dir == '\0') {
        free(bytes);
        return vg_error_set(err, 500, "internal_error", "files",
                            "no temporary directory for reference images");
    }

    char path[4096];
    int rc =
        write_temp_image(tmp_dir, type, bytes, n, path, sizeof(path), err);
    free(bytes);
    if (rc != 0)
        return -1;
    return vg_request_add_image(req, limits, path, arena, err);
}

int req_add_json_files(json_t *files, vg_video_request *req,
                       const vg_limits *limits, const char *tmp_dir,
                       const url_source *source, vg_arena *arena,
                       vg_error *err)
{
    if (json_is_string(files))
        return add_data_url(req, limits, json_string_value(files), 0, tmp_dir,
                            source, arena, err);
    if (!json_is_array(files))
        return vg_error_set(err, 422, "validation_error", "files",
                            "\"files\" must be an array of data: URLs");
    size_t i;
    json_t *item;
    json_array_foreach(files, i, item)
    {
        if (!json_is_string(item))
            return vg_error_set(err, 422, "validation_error", "files",
                                "\"files\" must be an array of data: URLs; "
                                "files[%zu] is not a string",
                                i);
    }
    /* Counted before anything is decoded, so an oversized batch is refused
     * without writing any of it to disk. */
    if ((size_t)req->n_images + json_array_size(files) >
        (size_t)req_max_images(limits))
        return too_many_images(limits, err);
    json_array_foreach(files, i, item)
    {
        if (add_data_url(req, limits, json_string_value(item), i, tmp_dir,
                         source, arena, err) != 0)
            return -1;
    }
    return 0;
}
