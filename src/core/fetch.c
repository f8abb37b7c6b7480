/*
 * fetch.c - one download of a client's reference image URL; see fetch.h.
 *
 * One libcurl easy transfer straight into a file, so an image is never
 * held in memory. Every way the transfer can end maps to one clear
 * error, because the client only sees the message: it must say whether
 * the URL was refused (scheme, address), the server answered badly
 * (status, redirects), or the image was too large or too slow. The
 * transfer is driven by whoever holds it: the fetcher's event loop
 * (fetcher.c) in the server, curl_easy_perform in vg_fetch_image.
 */
#include "core/fetch.h"
#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "util/netpolicy.h"
#include "util/outbound.h"

#define USER_AGENT "vidgate-fetch/1"
#define FIELD "files"

/* Where the body goes, and what went wrong on the way there. */
typedef struct sink {
    int fd;
    int64_t received;
    int64_t max_bytes;
    bool too_large;
    int write_errno; /* non-zero when the file could not be written */
} sink;

/* Returning less than asked makes libcurl stop with CURLE_WRITE_ERROR;
 * the flags in the sink then say why. */
static size_t write_body(char *data, size_t size, size_t nmemb, void *userp)
{
    sink *s = userp;
    size_t n = size * nmemb;
    if (s->received + (int64_t)n > s->max_bytes) {
        s->too_large = true;
        return 0;
    }
    if (vg_write_all(s->fd, data, n) != 0) {
        s->write_errno = errno;
        return 0;
    }
    s->received += (int64_t)n;
    return n;
}

/* The URL's own scheme is checked before anything is resolved, so a
 * refused scheme costs no DNS lookup and gets its own message. libcurl
 * checks it again (and every redirect's) through the protocol options. */
static int check_scheme(const char *url, bool allow_http, vg_error *err)
{
    if (url == NULL || *url == '\0')
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL is empty");
    if (strlen(url) > VG_OUTBOUND_URL_MAX)
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL is longer than %d bytes",
                            VG_OUTBOUND_URL_MAX);
    if (strncasecmp(url, "https://", 8) == 0)
        return 0;
    if (strncasecmp(url, "http://", 7) == 0) {
        if (allow_http)
            return 0;
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "plain http:// image URLs are not fetched on "
                            "this server (the operator has not set "
                            "images.allow_http); use an https:// URL, a "
                            "data: URL or a multipart file");
    }
    return vg_error_set(err, 422, "invalid_url", FIELD,
                        "image URLs must use https://%s",
                        allow_http ? " or http://" : "");
}

int vg_fetch_check_url(const char *url, const vg_fetch_limits *limits,
                       vg_error *err)
{
    return check_scheme(url, limits->allow_http, err);
}

static int timeout_of(const vg_fetch_limits *limits)
{
    return limits->timeout_s > 0 ? limits->timeout_s : 1;
}

/* Turns the end of a transfer into 0 or an error. */
static int outcome(CURL *easy, CURLcode rc, const sink *s,
                   const vg_fetch_limits *limits, const char *note,
                   const char *detail, vg_error *err)
{
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (s->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return vg_error_set(err, 413, "file_too_large", FIELD,
                            "the image at the URL is larger than the limit "
                            "of %" PRId64 " bytes",
                            limits->max_bytes);
    if (s->write_errno != 0)
        return vg_error_set(err, 500, "internal_error", FIELD,
                            "could not store the fetched image: %s",
                            strerror(s->write_errno));
    switch (rc) {
    case CURLE_OK:
    case CURLE_HTTP_RETURNED_ERROR:
        if (status >= 200 && status <= 299)
            return 0;
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "fetching the image failed: the server "
                            "answered HTTP %ld",
                            status);
    case CURLE_OPERATION_TIMEDOUT: {
        /* The low-speed limit ends a transfer with the same code. */
        double total = 0;
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &total);
        if (limits->min_bytes_per_s > 0 &&
            total + 0.5 < (double)timeout_of(limits))
            return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                                "fetching the image was too slow (less "
                                "than %d bytes a second for %d s)",
                                limits->min_bytes_per_s,
                                VG_FETCH_LOW_SPEED_S);
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "fetching the image timed out (the limit is "
                            "%d s)",
                            timeout_of(limits));
    }
    case CURLE_COULDNT_CONNECT:
        if (note[0] != '\0')
            return vg_error_set(err, 422, "invalid_url", FIELD,
                                "the image URL leads to a non-public "
                                "address (%s); the server's operator can "
                                "allow such addresses in its configuration",
                                note);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* The first URL passed check_scheme, so a redirect did this. */
        return vg_error_set(err, 422, "invalid_url", FIELD,
                            "the image URL redirects to a URL that is not "
                            "%s",
                            limits->allow_http ? "http(s)" : "https");
    case CURLE_TOO_MANY_REDIRECTS:
        return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                            "the image URL redirects more than %d times",
                            VG_FETCH_MAX_REDIRECTS);
    default:
        break;
    }
    return vg_error_set(err, 422, "image_fetch_failed", FIELD,
                        "fetching the image failed: %s",
                        detail[0] != '\0' ? detail : curl_easy_strerror(rc));
}

struct vg_fetch_transfer {
    CURL *easy;
    sink sink;
    vg_fetch_limits limits;
    char *path;
    char note[VG_REFUSAL_NOTE_MAX];
    char detail[CURL_ERROR_SIZE];
};

static void free_transfer(vg_fetch_transfer *t)
{
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    if (t->sink.fd >= 0)
        close(t->sink.fd);
    free(t->path);
    free(t);
}

vg_fetch_transfer *vg_fetch_transfer_open(const char *url,
                                          const vg_fetch_limits *limits,
                                          const char *dest_path,
                                          vg_error *err)
{
    if (check_scheme(url, limits->allow_http, err) != 0)
        return NULL;
    if (vg_curl_global_init_once() != 0) {
        vg_error_set(err, 500, "internal_error", FIELD,
                     "libcurl could not initialise");
        return NULL;
    }
    vg_fetch_transfer *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        vg_error_set(err, 500, "internal_error", FIELD, "out of memory");
        return NULL;
    }
    t->sink.fd = -1;
    t->sink.max_bytes = limits->max_bytes;
    t->limits = *limits;
    t->easy = curl_easy_init();
    t->path = strdup(dest_path);
    if (t->easy == NULL || t->path == NULL) {
        free_transfer(t);
        vg_error_set(err, 500, "internal_error", FIELD,
                     "could not create a libcurl handle");
        return NULL;
    }
    t->sink.fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      0600);
    if (t->sink.fd < 0) {
        vg_error_set(err, 500, "internal_error", FIELD,
                     "could not store the fetched image: %s", strerror(errno));
        free_transfer(t);
        return NULL;
    }

    int timeout_s = timeout_of(limits);
    int connect_s = timeout_s < VG_FETCH_CONNECT_TIMEOUT_S
                        ? timeout_s
                        : VG_FETCH_CONNECT_TIMEOUT_S;
    CURL *easy = t->easy;
    vg_outbound_setup(easy, &(vg_outbound){
                                .url = url,
                                .user_agent = USER_AGENT,
                                .https_only = !limits->allow_http,
                                .max_redirects = VG_FETCH_MAX_REDIRECTS,
                                .connect_timeout_ms = (long)connect_s * 1000L,
                                .timeout_ms = (long)timeout_s * 1000L,
                                .restrict_addresses = true,
                                .allow_private = limits->allow_private,
                                .refusal_note = t->note,
                                .write = write_body,
                                .write_data = &t->sink,
                                .error = t->detail,
                            });
    /* Error pages are not images: stop at the status line. */
    curl_easy_setopt(easy, CURLOPT_FAILONERROR, 1L);
    /* A server that trickles holds a transfer slot for nothing. */
    if (limits->min_bytes_per_s > 0) {
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT,
                         (long)limits->min_bytes_per_s);
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                         (long)VG_FETCH_LOW_SPEED_S);
    }
    /* A Content-Length over the limit is refused before the body. */
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)limits->max_bytes);
    return t;
}

CURL *vg_fetch_transfer_easy(vg_fetch_transfer *t)
{
    return t->easy;
}

int vg_fetch_transfer_close(vg_fetch_transfer *t, CURLcode rc, vg_error *err)
{
    int result = outcome(t->easy, rc, &t->sink, &t->limits, t->note,
                         t->detail, err);
    int fd = t->sink.fd;
    t->sink.fd = -1;
    if (close(fd) != 0 && result == 0)
        result = vg_error_set(err, 500, "internal_error", FIELD,
                              "could not store the fetched image: %s",
                              strerror(errno));
    if (result != 0)
        unlink(t->path);
    free_transfer(t);
    return result;
}

void vg_fetch_transfer_abort(vg_fetch_transfer *t)
{
    if (t == NULL)
        return;
    unlink(t->path);
    free_transfer(t);
}

int vg_fetch_image(const char *url, const vg_fetch_limits *limits,
                   const char *dest_path, vg_error *err)
{
    vg_fetch_transfer *t = vg_fetch_transfer_open(url, limits, dest_path, err);
    if (t == NULL)
        return -1;
    CURLcode rc = curl_easy_perform(t->easy);
    return vg_fetch_transfer_close(t, rc, err);
}
