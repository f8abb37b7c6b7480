/*
 * files_api.c - GET /v1/files/{key}?expires=&signature=: serves a blob
 * (a stored video) through a signed, expiring link, with Range support,
 * so browsers and download tools need no bearer header.
 *
 * The same signed links hand a running job's reference images
 * ("uploads/<job id>-<n>") to providers that fetch images by URL; those
 * links live two hours, and the blob goes when its job ends.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/request.h"

#define UPLOADS_PREFIX "uploads/"

/* An upload's name is "<job id>-<n>": nothing that could leave the
 * folder. */
static bool upload_name_ok(const char *name)
{
    if (*name == '\0' || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
              *p == '-'))
            return false;
    return true;
}

static const char *image_type(int fd)
{
    unsigned char head[12];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    return vg_image_mime(vg_image_sniff(head, n > 0 ? (size_t)n : 0));
}

int vg_api_file(vg_app *app, vg_http_request *req)
{
    vg_error err;
    const char *key = req->params[0];
    if (vg_links_verify(&app->links, key, vg_http_query(req, "expires"),
                        vg_http_query(req, "signature"), time(NULL),
                        &err) != 0)
        return vg_http_send_error(req, &err);
    bool upload = strncmp(key, UPLOADS_PREFIX, strlen(UPLOADS_PREFIX)) == 0;
    if (upload && !upload_name_ok(key + strlen(UPLOADS_PREFIX))) {
        vg_error_set(&err, 404, "not_found", NULL, "no such file");
        return vg_http_send_error(req, &err);
    }
    /* Served from the backend's file descriptor (the local folder). A
     * backend without one (S3) streams or redirects instead: issue 14. */
    int fd = -1;
    int64_t size = 0;
    int rc = app->blob->ops->open_read != NULL
                 ? app->blob->ops->open_read(app->blob, key, &fd, &size, &err)
                 : vg_error_set(&err, 501, "not_implemented", NULL,
                                "the %s blob backend cannot serve files",
                                app->blob->ops->name);
    if (rc == VG_STORE_NOT_FOUND) {
        vg_error_set(&err, 404, "not_found", NULL,
                     upload ? "no such file (its job may have ended)"
                            : "no such file");
        return vg_http_send_error(req, &err);
    }
    if (rc != 0)
        return vg_http_send_error(req, &err);
    return vg_http_send_file(req, fd, size,
                             upload ? image_type(fd) : "video/mp4");
}
