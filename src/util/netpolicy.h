/*
 * netpolicy.h - who vidgate may connect to on a client's behalf.
 *
 * Webhook URLs (and, later, image URLs) come from API clients. Without a
 * policy a client could make the server call its own loopback services,
 * the cloud metadata endpoint (169.254.169.254) or anything else on the
 * operator's private network (server-side request forgery). The policy
 * has two halves, both needed:
 *
 *  - at submit time, a URL whose host resolves to a non-public address
 *    is refused, so the client gets a clear 422 (vg_outbound_url_host
 *    here, then the fetcher resolves the host without blocking and
 *    judges each address with vg_check_outbound_address);
 *  - at connect time, vg_curl_restrict_addresses makes libcurl refuse
 *    every non-public address it is about to connect to, because a name
 *    can resolve to a public address when checked and to a private one
 *    when used (DNS rebinding).
 *
 * Operators who deliver to intranet targets (or tests on loopback) turn
 * the restriction off with allow_private.
 */
#ifndef VG_NETPOLICY_H
#define VG_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "util/error.h"

/* URLs longer than this are refused outright. */
#define VG_OUTBOUND_URL_MAX 2000

/* Calls curl_global_init once per process; safe from any thread. Every
 * user of libcurl in vidgate calls it before its first handle. Returns 0,
 * or -1 when libcurl could not initialise. */
int vg_curl_global_init_once(void);

/* True when sa (AF_INET or AF_INET6) is a globally routable unicast
 * address; false for loopback, private, link-local, unspecified, CGNAT,
 * multicast, broadcast, reserved, benchmarking and documentation ranges,
 * for IPv6 forms embedding such an IPv4 address (::ffff:127.0.0.1), and
 * for any other family. */
bool vg_address_is_public(const struct sockaddr *sa);

/* Why sa is not public, in a few words ("loopback", "private",
 * "link-local", ...), or "public". For messages. */
const char *vg_address_kind(const struct sockaddr *sa);

/* Room for a host name (DNS allows 253 bytes) and its NUL. */
#define VG_HOST_MAX 256

/* The checks of a client-supplied URL that need no network: it must
 * parse, use one of the comma-separated schemes (e.g. "http,https"),
 * name a host, carry no user name or password and be at most
 * VG_OUTBOUND_URL_MAX bytes. On success writes the host into host (an
 * IPv6 literal without its brackets) and returns 0; otherwise fills err
 * (422, code "invalid_url", field `field`) with why, and returns -1.
 * What the host resolves to is checked afterwards, off the HTTP threads,
 * by the fetcher (vg_url_check_task_new in core/fetch.h). */
int vg_outbound_url_host(const char *url, const char *schemes,
                         const char *field, char host[VG_HOST_MAX],
                         vg_error *err);

/* 0 when a client's URL may lead to sa: it is public, or allow_private.
 * Otherwise fills err (422 "invalid_url", field `field`) naming the
 * address and its kind, and returns -1. */
int vg_check_outbound_address(const struct sockaddr *sa, bool allow_private,
                              const char *field, vg_error *err);

/* Installs on easy a socket-open callback that refuses to connect to any
 * non-public address (the transfer then fails with
 * CURLE_COULDNT_CONNECT), and turns proxies off, since through a proxy
 * the callback would only see the proxy's address. With allow_private it
 * installs nothing. Uses neither CURLOPT_PRIVATE nor any other option the
 * caller may want. */
void vg_curl_restrict_addresses(CURL *easy, bool allow_private);

/* Room for a refusal note: "<address> is <a|an> <kind> address". */
#define VG_REFUSAL_NOTE_MAX 96

/* The same, and when a connection is refused the callback writes why
 * into note (which must outlive the transfer; set note[0] = '\0'
 * first), since libcurl's own error only says it could not connect. */
void vg_curl_restrict_addresses_noting(CURL *easy, bool allow_private,
                                       char note[VG_REFUSAL_NOTE_MAX]);

#endif
