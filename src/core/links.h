/*
 * links.h - signed, expiring links to stored videos.
 *
 * A video URL must work in a browser's <video> tag or a plain download,
 * where no bearer header is sent, yet must not be guessable or last
 * forever. The link carries its expiry and an HMAC-SHA256 over the blob
 * key and the expiry, keyed with a secret generated at first start.
 */
#ifndef VG_LINKS_H
#define VG_LINKS_H

#include <stdint.h>

#include "util/error.h"
#include "store/store.h"
#include "util/arena.h"

#define VG_FILES_PREFIX "/v1/files/"

typedef struct vg_links {
    char secret[65];
    int lifetime_s;
    char base_url[512]; /* "http://host:port", no trailing slash */
} vg_links;

int vg_links_init(vg_links *links, vg_store *store, int lifetime_s,
                  const char *base_url, vg_error *err);
/* base_url + /v1/files/<key>?expires=<unix s>&signature=<hex>; NULL for
 * a key longer than 256 bytes (vidgate's own keys are far shorter). */
char *vg_links_sign(const vg_links *links, const char *blob_key,
                    int64_t now_s, vg_arena *arena);
/* The same with its own lifetime (reference images handed to
 * providers live shorter than video links). */
char *vg_links_sign_for(const vg_links *links, const char *blob_key,
                        int64_t now_s, int lifetime_s, vg_arena *arena);
/* 403 when the signature is wrong or the link has expired. */
int vg_links_verify(const vg_links *links, const char *blob_key,
                    const char *expires, const char *signature,
                    int64_t now_s, vg_error *err);

#endif
