/*
 * netpolicy.c - the outbound address policy; see netpolicy.h.
 *
 * The ranges come from the IANA special-purpose address registries (IPv4
 * and IPv6). Where the registries leave a choice we refuse: a webhook
 * target has no business being a benchmarking, documentation or
 * protocol-assignment address, and an IPv6 address that carries an IPv4
 * one (mapped, compatible, NAT64, 6to4) is judged by the IPv4 address it
 * leads to, since that is where the packets end up.
 */
#include "util/netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/log.h"

/* ---- libcurl initialisation -------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int vg_curl_global_init_once(void)
{
    pthread_once(&curl_once, curl_init);
    return curl_init_rc;
}

/* ---- classification ---------------------------------------------------- */

typedef struct v4_range {
    uint32_t base;
    int bits;
    const char *kind;
} v4_range;

/* First match wins, so 255.255.255.255 is "broadcast" before 240/4. */
static const v4_range v4_ranges[] = {
    {0x00000000u, 8, "unspecified"},           /* 0.0.0.0/8 "this network" */
    {0x0A000000u, 8, "private"},               /* 10.0.0.0/8 */
    {0x64400000u, 10, "carrier-grade NAT"},    /* 100.64.0.0/10 */
    {0x7F000000u, 8, "loopback"},              /* 127.0.0.0/8 */
    {0xA9FE0000u, 16, "link-local"},           /* 169.254.0.0/16 */
    {0xAC100000u, 12, "private"},              /* 172.16.0.0/12 */
    {0xC0000000u, 24, "IETF special-purpose"}, /* 192.0.0.0/24 */
    {0xC0000200u, 24, "documentation"},        /* 192.0.2.0/24 TEST-NET-1 */
    {0xC0586300u, 24, "reserved"},             /* 192.88.99.0/24 6to4 relay */
    {0xC0A80000u, 16, "private"},              /* 192.168.0.0/16 */
    {0xC6120000u, 15, "benchmarking"},         /* 198.18.0.0/15 */
    {0xC6336400u, 24, "documentation"},        /* 198.51.100.0/24 */
    {0xCB007100u, 24, "documentation"},        /* 203.0.113.0/24 */
    {0xE0000000u, 4, "multicast"},             /* 224.0.0.0/4 */
    {0xFFFFFFFFu, 32, "broadcast"},            /* 255.255.255.255 */
    {0xF0000000u, 4, "reserved"},              /* 240.0.0.0/4 */
};

/* addr in host byte order. */
static const char *classify_v4(uint32_t addr)
{
    for (size_t i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++) {
        const v4_range *r = &v4_ranges[i];
        uint32_t mask = r->bits == 0 ? 0 : 0xFFFFFFFFu << (32 - r->bits);
        if ((addr & mask) == r->base)
            return r->kind;
    }
    return "public";
}

static uint32_t v4_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* True when the first `bits` bits of a equal those of prefix. */
static bool has_prefix(const unsigned char a[16],
                       const unsigned char prefix[16], int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return (a[whole] & mask) == (prefix[whole] & mask);
}

typedef struct v6_range {
    unsigned char prefix[16];
    int bits;
    const char *kind;
} v6_range;

/* Ranges with no IPv4 address inside, checked after those with one. */
static const v6_range v6_ranges[] = {
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "private"}, /* local NAT64 */
    {{0x01, 0x00}, 64, "reserved"},                  /* 100::/64 discard */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"}, /* 2001:db8::/32 */
    {{0x20, 0x01}, 23, "IETF special-purpose"},      /* 2001::/23 */
    {{0x3f, 0xff}, 20, "documentation"},             /* 3fff::/20 */
    {{0xfc}, 7, "private"},                          /* fc00::/7 */
    {{0xfe, 0x80}, 10, "link-local"},                /* fe80::/10 */
    {{0xfe, 0xc0}, 10, "site-local"},                /* fec0::/10 */
    {{0xff}, 8, "multicast"},                        /* ff00::/8 */
};

static const char *classify_v6(const unsigned char a[16])
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[16] = {[10] = 0xff, [11] = 0xff};
    static const unsigned char nat64[16] = {0x00, 0x64, 0xff, 0x9b};
    static const unsigned char six_to_four[16] = {0x20, 0x02};
    static const unsigned char global[16] = {0x20};

    if (memcmp(a, zero, 15) == 0 && a[15] == 0)
        return "unspecified";
    if (memcmp(a, zero, 15) == 0 && a[15] == 1)
        return "loopback";
    if (has_prefix(a, mapped, 96))
        return classify_v4(v4_at(a + 12));
    if (has_prefix(a, zero, 96)) {
        /* ::a.b.c.d, deprecated since 2006: nothing legitimate uses it. */
        const char *kind = classify_v4(v4_at(a + 12));
        return strcmp(kind, "public") == 0 ? "IPv4-compatible" : kind;
    }
    if (has_prefix(a, nat64, 96))
        return classify_v4(v4_at(a + 12));
    if (has_prefix(a, six_to_four, 16)) {
        const char *kind = classify_v4(v4_at(a + 2));
        if (strcmp(kind, "public") != 0)
            return kind;
    }
    for (size_t i = 0; i < sizeof(v6_ranges) / sizeof(v6_ranges[0]); i++) {
        if (has_prefix(a, v6_ranges[i].prefix, v6_ranges[i].bits))
            return v6_ranges[i].kind;
    }
    /* Only 2000::/3 is allocated for global unicast; the rest is IANA's. */
    if (!has_prefix(a, global, 3))
        return "reserved";
    return "public";
}

const char *vg_address_kind(const struct sockaddr *sa)
{
    if (sa == NULL)
        return "unknown";
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        return classify_v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        return classify_v6(in6.sin6_addr.s6_addr);
    }
    return "non-IP";
}

bool vg_address_is_public(const struct sockaddr *sa)
{
    return strcmp(vg_address_kind(sa), "public") == 0;
}

/* The address as text, for messages; "?" when it cannot be printed. */
static void format_address(const struct sockaddr *sa, char *out, size_t n)
{
    const void *bytes = NULL;
    if (sa->sa_family == AF_INET)
        bytes = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        bytes = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (bytes == NULL ||
        inet_ntop(sa->sa_family, bytes, out, (socklen_t)n) == NULL)
        snprintf(out, n, "?");
}

static const char *article(const char *word)
{
    return strchr("aeiouAEIOU", word[0]) != NULL ? "an" : "a";
}

/* ---- submit-time check ------------------------------------------------- */

static bool scheme_allowed(const char *scheme, const char *schemes)
{
    size_t len = strlen(scheme);
    const char *p = schemes;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ')
            p++;
        size_t tok = strcspn(p, ", ");
        if (tok == len && tok > 0 && strncasecmp(p, scheme, len) == 0)
            return true;
        p += tok;
    }
    return false;
}

static bool has_part(CURLU *u, CURLUPart part)
{
    char *value = NULL;
    CURLUcode rc = curl_url_get(u, part, &value, 0);
    bool present = rc == CURLUE_OK && value != NULL;
    curl_free(value);
    return present;
}

int vg_check_outbound_address(const struct sockaddr *sa, bool allow_private,
                              const char *field, vg_error *err)
{
    if (allow_private || vg_address_is_public(sa))
        return 0;
    if (field == NULL)
        field = "url";
    char text[INET6_ADDRSTRLEN];
    format_address(sa, text, sizeof(text));
    const char *kind = vg_address_kind(sa);
    return vg_error_set(err, 422, "invalid_url", field,
                        "%s resolves to %s %s address (%s); the server's "
                        "operator can allow such targets in its "
                        "configuration",
                        field, article(kind), kind, text);
}

int vg_outbound_url_host(const char *url, const char *schemes,
                         const char *field, char host_out[VG_HOST_MAX],
                         vg_error *err)
{
    if (field == NULL)
        field = "url";
    if (url == NULL || url[0] == '\0')
        return vg_error_set(err, 422, "invalid_url", field, "%s is empty",
                            field);
    size_t len = strlen(url);
    if (len > VG_OUTBOUND_URL_MAX)
        return vg_error_set(err, 422, "invalid_url", field,
                            "%s is %zu bytes long; at most %d are allowed",
                            field, len, VG_OUTBOUND_URL_MAX);

    CURLU *u = curl_url();
    if (u == NULL)
        return vg_error_set(err, 500, "internal_error", field,
                            "out of memory while checking %s", field);
    int result = -1;
    char *scheme = NULL, *host = NULL;
    /* Unknown schemes parse too, so they get the same clear refusal as
     * known but unwanted ones (ftp, file). */
    CURLUcode uc =
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        vg_error_set(err, 422, "invalid_url", field,
                     "%s is not a valid absolute URL (%s)", field,
                     curl_url_strerror(uc));
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        !scheme_allowed(scheme, schemes)) {
        vg_error_set(err, 422, "invalid_url", field,
                     "%s uses the scheme \"%s\"; allowed: %s", field,
                     scheme != NULL ? scheme : "", schemes);
        goto done;
    }
    if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
        has_part(u, CURLUPART_OPTIONS)) {
        vg_error_set(err, 422, "invalid_url", field,
                     "%s must not contain a user name or password", field);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        host == NULL || host[0] == '\0') {
        vg_error_set(err, 422, "invalid_url", field, "%s has no host", field);
        goto done;
    }
    /* curl keeps IPv6 literals in brackets; resolvers want them bare. */
    const char *name = host;
    size_t name_len = strlen(host);
    if (host[0] == '[' && name_len >= 2 && host[name_len - 1] == ']') {
        name++;
        name_len -= 2;
    }
    if (name_len == 0 || name_len >= VG_HOST_MAX) {
        vg_error_set(err, 422, "invalid_url", field,
                     "%s has an invalid host", field);
        goto done;
    }
    memcpy(host_out, name, name_len);
    host_out[name_len] = '\0';
    result = 0;
done:
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return result;
}

/* ---- connect-time check ------------------------------------------------ */

/* libcurl calls this for every socket it opens, after resolving and
 * right before connecting, so the address checked is the one used.
 * clientp is the caller's note buffer, or NULL. */
static curl_socket_t open_public_socket(void *clientp, curlsocktype purpose,
                                        struct curl_sockaddr *address)
{
    /* address->addr is only as large as struct sockaddr in the type, but
     * libcurl passes addrlen bytes; copy them into storage that fits. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    size_t n = address->addrlen;
    if (n > sizeof(ss))
        n = sizeof(ss);
    memcpy(&ss, &address->addr, n);
    const struct sockaddr *sa = (const struct sockaddr *)&ss;

    if (purpose != CURLSOCKTYPE_IPCXN || !vg_address_is_public(sa)) {
        char text[INET6_ADDRSTRLEN];
        format_address(sa, text, sizeof(text));
        const char *kind = vg_address_kind(sa);
        vg_log_warn("refused an outbound connection to %s (%s address)", text,
                    kind);
        if (clientp != NULL)
            snprintf(clientp, VG_REFUSAL_NOTE_MAX, "%s is %s %s address", text,
                     article(kind), kind);
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

void vg_curl_restrict_addresses_noting(CURL *easy, bool allow_private,
                                       char note[VG_REFUSAL_NOTE_MAX])
{
    if (allow_private)
        return;
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_public_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, (void *)note);
    /* "" means no proxy at all, not even one from the environment. */
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
}

void vg_curl_restrict_addresses(CURL *easy, bool allow_private)
{
    vg_curl_restrict_addresses_noting(easy, allow_private, NULL);
}
