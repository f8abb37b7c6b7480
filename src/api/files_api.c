/*
 * files_api.c - GET /v1/files/{key}?expires=&signature=: serves a stored
 * video through a signed, expiring link, with Range support, so browsers
 * and download tools need no bearer header.
 *
 * The same signed links hand a running job's reference images
 * ("uploads/<name>") to providers that fetch images by URL; those links
 * live two hours, and the file goes when its job ends.
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

static int send_upload(vg_app *app, vg_http_request *req, const char *name)
{
    vg_error err;
    char path[PATH_MAX + 96];
    snprintf(path, sizeof(path), "%s/uploads/%s", app->config.data_dir,
             name);
    int fd = upload_name_ok(name) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        vg_error_set(&err, 404, "not_found", NULL,
                     "no such file (its job may have ended)");
        return vg_http_send_error(req, &err);
    }
    return vg_http_send_file(req, fd, st.st_size, image_type(fd));
}

int vg_api_file(vg_app *app, vg_http_request *req)
{
    vg_error err;
    const char *key = req->params[0];
    if (vg_links_verify(&app->links, key, vg_http_query(req, "expires"),
                        vg_http_query(req, "signature"), time(NULL),
                        &err) != 0)
        return vg_http_send_error(req, &err);
    if (strncmp(key, UPLOADS_PREFIX, strlen(UPLOADS_PREFIX)) == 0)
        return send_upload(app, req, key + strlen(UPLOADS_PREFIX));
    int fd = -1;
    int64_t size = 0;
    int rc = app->blob->ops->open_read(app->blob, key, &fd, &size, &err);
    if (rc == VG_STORE_NOT_FOUND) {
        vg_error_set(&err, 404, "not_found", NULL, "no such file");
        return vg_http_send_error(req, &err);
    }
    if (rc != 0)
        return vg_http_send_error(req, &err);
    return vg_http_send_file(req, fd, size, "video/mp4");
}
