/*
 * links.c - signed video links; see links.h.
 */
#include "core/links.h"

#include <stdio.h>
#include <string.h>

#include "util/crypto.h"
#include "util/parse.h"

int vg_links_init(vg_links *links, vg_store *store, int lifetime_s,
                  const char *base_url, vg_error *err)
{
    unsigned char raw[32];
    char fresh[65];
    if (vg_random_bytes(raw, sizeof(raw)) != 0)
        return vg_error_set(err, 500, "internal_error", NULL,
                            "no entropy for the link signing secret");
    vg_hex_encode(raw, sizeof(raw), fresh);
    links->lifetime_s = lifetime_s;
    snprintf(links->base_url, sizeof(links->base_url), "%s", base_url);
    size_t n = strlen(links->base_url);
    while (n > 0 && links->base_url[n - 1] == '/')
        links->base_url[--n] = '\0';
    int rc = store->ops->set_setting_once(store, "link_secret", fresh,
                                          links->secret,
                                          sizeof(links->secret), err);
    return rc == VG_STORE_OK ? 0 : -1;
}

/* Keys vidgate makes are short ("videos/<uuid>.mp4"); anything longer
 * in a URL is not ours. */
#define MAX_LINK_KEY 256

/* Signs "<key>\n<expires>"; returns -1 for a key too long to be ours. */
static int link_signature(const vg_links *links, const char *blob_key,
                          int64_t expires, char out[65])
{
    char msg[MAX_LINK_KEY + 32];
    int n = snprintf(msg, sizeof(msg), "%s\n%lld", blob_key,
                     (long long)expires);
    if (strlen(blob_key) > MAX_LINK_KEY || n < 0 || (size_t)n >= sizeof(msg))
        return -1;
    vg_hmac_sha256_hex(links->secret, strlen(links->secret), msg,
                       (size_t)n, out);
    return 0;
}

char *vg_links_sign(const vg_links *links, const char *blob_key,
                    int64_t now_s, vg_arena *arena)
{
    return vg_links_sign_for(links, blob_key, now_s, links->lifetime_s,
                             arena);
}

char *vg_links_sign_for(const vg_links *links, const char *blob_key,
                        int64_t now_s, int lifetime_s, vg_arena *arena)
{
    char sig[65];
    int64_t expires = now_s + lifetime_s;
    if (link_signature(links, blob_key, expires, sig) != 0)
        return NULL;
    return vg_arena_sprintf(arena, "%s" VG_FILES_PREFIX "%s?expires=%lld"
                            "&signature=%s",
                            links->base_url, blob_key, (long long)expires,
                            sig);
}

int vg_links_verify(const vg_links *links, const char *blob_key,
                    const char *expires, const char *signature,
                    int64_t now_s, vg_error *err)
{
    int64_t when;
    char expected[65];
    if (expires == NULL || signature == NULL ||
        vg_parse_int64(expires, &when) != 0)
        return vg_error_set(err, 403, "invalid_signature", NULL,
                            "this link is not signed; ask the API for a "
                            "fresh video URL");
    if (link_signature(links, blob_key, when, expected) != 0 ||
        !vg_secure_equal(expected, signature))
        return vg_error_set(err, 403, "invalid_signature", NULL,
                            "this link's signature is not valid");
    if (when < now_s)
        return vg_error_set(err, 403, "link_expired", NULL,
                            "this link has expired; ask the API for a "
                            "fresh video URL");
    return 0;
}
