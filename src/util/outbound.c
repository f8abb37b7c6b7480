/*
 * outbound.c - see outbound.h.
 */
#include "util/outbound.h"

void vg_outbound_setup(CURL *easy, const vg_outbound *o)
{
    curl_easy_setopt(easy, CURLOPT_URL, o->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    const char *protocols = o->https_only ? "https" : "http,https";
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
#else
    long protocols = CURLPROTO_HTTPS | (o->https_only ? 0 : CURLPROTO_HTTP);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS, protocols);
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS, protocols);
#endif
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION,
                     o->max_redirects > 0 ? 1L : 0L);
    if (o->max_redirects > 0)
        curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)o->max_redirects);
    /* Timeouts must not arrive as signals in a threaded server. */
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, o->user_agent);
    if (o->write != NULL) {
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, o->write);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, o->write_data);
    }
    if (o->error != NULL)
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, o->error);
    if (o->private_data != NULL)
        curl_easy_setopt(easy, CURLOPT_PRIVATE, o->private_data);
    if (o->restrict_addresses) {
        if (o->refusal_note != NULL)
            vg_curl_restrict_addresses_noting(easy, o->allow_private,
                                              o->refusal_note);
        else
            vg_curl_restrict_addresses(easy, o->allow_private);
    }
}
