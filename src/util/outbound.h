/*
 * outbound.h - the one setup of an outbound HTTP transfer. Every request
 * vidgate sends (to upstream providers, to webhook receivers, for image
 * URLs) gets its protocols, redirects, timeouts, user agent and address
 * policy here, so that a rule such as "no file:// URLs" or "no signals
 * from libcurl" is written once.
 */
#ifndef VG_OUTBOUND_H
#define VG_OUTBOUND_H

#include <stdbool.h>

#include <curl/curl.h>

#include "util/netpolicy.h"

typedef struct vg_outbound {
    const char *url;
    const char *user_agent;
    bool https_only;   /* else http and https (redirects alike) */
    int max_redirects; /* 0: a 3xx is the answer, not followed */
    long connect_timeout_ms;
    long timeout_ms; /* the whole transfer; 0: none */
    /* The address policy of netpolicy.h, for URLs that clients or
     * providers chose: non-public addresses are refused at connect time
     * unless allow_private, and refusal_note (VG_REFUSAL_NOTE_MAX bytes,
     * may be NULL) says why. */
    bool restrict_addresses;
    bool allow_private;
    char *refusal_note;
    /* Where the body goes (NULL: libcurl's default), libcurl's error text
     * (CURL_ERROR_SIZE bytes, may be NULL) and the handle's owner. */
    curl_write_callback write;
    void *write_data;
    char *error;
    void *private_data;
} vg_outbound;

/* Sets easy up for o. Leaves the method, body and headers to the
 * caller. */
void vg_outbound_setup(CURL *easy, const vg_outbound *o);

#endif
