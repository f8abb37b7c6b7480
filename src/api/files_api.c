/*
 * files_api.c - GET /v1/files/{key}?expires=&signature=: serves a stored
 * video through a signed, expiring link, with Range support, so browsers
 * and download tools need no bearer header.
 */
#include <time.h>

#include "api/api.h"

int vg_api_file(vg_app *app, vg_http_request *req)
{
    vg_error err;
    const char *key = req->params[0];
    if (vg_links_verify(&app->links, key, vg_http_query(req, "expires"),
                        vg_http_query(req, "signature"), time(NULL),
                        &err) != 0)
        return vg_http_send_error(req, &err);
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
