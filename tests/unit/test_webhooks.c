/*
 * test_webhooks.c - signed webhook deliveries (core/webhooks.h) and the
 * outbound address policy (util/netpolicy.h), one test per rule.
 *
 * The policy tests use IP literals and "localhost" only: there is no
 * network here, and a test must not depend on what some DNS answers. The
 * engine tests run a real receiver (libmicrohttpd on a loopback port the
 * kernel picks) that answers from a script, and a real SQLite store, and
 * check both what arrived over the wire and what the store recorded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/fetcher.h"
#include "core/webhooks.h"
#include "store/store.h"
#include "util/crypto.h"
#include "util/netpolicy.h"
#include "test_support.h"

/* ---- signing ----------------------------------------------------------- */

/* The vector every official Standard Webhooks library tests against. */
#define VECTOR_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VECTOR_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VECTOR_TS 1614265330
#define VECTOR_BODY "{\"test\": 2432232314}"
#define VECTOR_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_signature_matches_the_published_vector(void **state)
{
    (void)state;
    char sig[VG_WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS,
                                     VECTOR_BODY, strlen(VECTOR_BODY), sig,
                                     sizeof(sig)),
                     0);
    assert_string_equal(sig, VECTOR_SIGNATURE);

    /* The libraries accept the key without its prefix too. */
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET + 6, VECTOR_ID, VECTOR_TS,
                                     VECTOR_BODY, strlen(VECTOR_BODY), sig,
                                     sizeof(sig)),
                     0);
    assert_string_equal(sig, VECTOR_SIGNATURE);
}

static void test_signature_covers_id_timestamp_and_body(void **state)
{
    (void)state;
    char sig[VG_WEBHOOK_SIGNATURE_MAX];
    const char *body = VECTOR_BODY;
    size_t len = strlen(body);
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET, "msg_other", VECTOR_TS,
                                     body, len, sig, sizeof(sig)),
                     0);
    assert_string_not_equal(sig, VECTOR_SIGNATURE);
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS + 1,
                                     body, len, sig, sizeof(sig)),
                     0);
    assert_string_not_equal(sig, VECTOR_SIGNATURE);
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, body,
                                     len - 1, sig, sizeof(sig)),
                     0);
    assert_string_not_equal(sig, VECTOR_SIGNATURE);
}

static void test_signature_refuses_bad_secret_or_small_buffer(void **state)
{
    (void)state;
    char sig[VG_WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(vg_webhook_sign("whsec_not base64!", "msg_1", 1, "{}", 2,
                                     sig, sizeof(sig)),
                     -1);
    assert_int_equal(
        vg_webhook_sign("whsec_", "msg_1", 1, "{}", 2, sig, sizeof(sig)), -1);
    char small[20];
    assert_int_equal(vg_webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS,
                                     VECTOR_BODY, strlen(VECTOR_BODY), small,
                                     sizeof(small)),
                     -1);
}

static void test_new_secret_is_whsec_and_32_random_bytes(void **state)
{
    (void)state;
    char a[64], b[64];
    vg_webhook_new_secret(a);
    vg_webhook_new_secret(b);
    assert_int_equal(strncmp(a, "whsec_", 6), 0);
    /* 32 bytes are 44 base64 characters with one "=". */
    assert_int_equal(strlen(a), 6 + 44);
    assert_int_equal(a[49], '=');
    assert_string_not_equal(a, b);
    char sig[VG_WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(vg_webhook_sign(a, "msg_1", 1, "{}", 2, sig, sizeof(sig)),
                     0);
}

static void test_config_defaults(void **state)
{
    (void)state;
    vg_webhook_config cfg;
    memset(&cfg, 0xff, sizeof(cfg));
    vg_webhook_config_defaults(&cfg);
    assert_false(cfg.allow_private);
    assert_int_equal(cfg.timeout_s, 10);
    assert_int_equal(cfg.retry_base_ms, 5000);
    assert_int_equal(cfg.retry_max_gap_ms, 3600000);
    assert_int_equal(cfg.give_up_after_ms, 24LL * 3600 * 1000);
    assert_int_equal(cfg.max_in_flight, 64);
}

/* ---- address classification -------------------------------------------- */

typedef struct address_case {
    const char *text;
    bool is_public;
} address_case;

static const address_case address_cases[] = {
    /* IPv4, public, including the edges of the ranges around them. */
    {"8.8.8.8", true},
    {"1.1.1.1", true},
    {"93.184.216.34", true},
    {"11.0.0.1", true},
    {"100.63.255.255", true},
    {"100.128.0.0", true},
    {"126.255.255.255", true},
    {"128.0.0.1", true},
    {"169.253.255.255", true},
    {"172.15.255.255", true},
    {"172.32.0.0", true},
    {"192.0.1.1", true},
    {"192.167.255.255", true},
    {"192.169.0.1", true},
    {"198.17.255.255", true},
    {"198.20.0.0", true},
    {"223.255.255.255", true},
    /* IPv4, not public. */
    {"0.0.0.0", false},
    {"0.1.2.3", false},
    {"10.0.0.1", false},
    {"10.255.255.255", false},
    {"100.64.0.1", false},
    {"100.127.255.255", false},
    {"127.0.0.1", false},
    {"127.255.255.254", false},
    {"169.254.169.254", false},
    {"172.16.0.1", false},
    {"172.31.255.255", false},
    {"192.0.0.8", false},
    {"192.0.2.1", false},
    {"192.168.1.1", false},
    {"198.18.0.1", false},
    {"198.19.255.255", false},
    {"198.51.100.7", false},
    {"203.0.113.9", false},
    {"224.0.0.1", false},
    {"239.255.255.250", false},
    {"240.0.0.1", false},
    {"255.255.255.255", false},
    /* IPv6, public. */
    {"2606:4700:4700::1111", true},
    {"2001:4860:4860::8888", true},
    {"2a00:1450:4001::1", true},
    {"::ffff:8.8.8.8", true},
    {"64:ff9b::808:808", true},
    {"2002:808:808::1", true},
    /* IPv6, not public. */
    {"::", false},
    {"::1", false},
    {"::ffff:127.0.0.1", false},
    {"::ffff:10.0.0.1", false},
    {"::ffff:169.254.169.254", false},
    {"::ffff:0.0.0.0", false},
    {"::127.0.0.1", false},
    {"::8.8.8.8", false},
    {"64:ff9b::a00:1", false},
    {"64:ff9b:1::1", false},
    {"2002:7f00:1::1", false},
    {"2002:c0a8:101::1", false},
    {"100::1", false},
    {"2001::1", false},
    {"2001:db8::1", false},
    {"3fff::1", false},
    {"fc00::1", false},
    {"fd12:3456::1", false},
    {"fe80::1", false},
    {"febf:ffff::1", false},
    {"fec0::1", false},
    {"ff02::1", false},
    {"ff0e::1", false},
    {"4000::1", false},
    {"1234::1", false},
};

/* Parses text into ss as an IPv4 or IPv6 address. */
static const struct sockaddr *parse_address(const char *text,
                                            struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
    } else {
        fail_msg("not an address: %s", text);
    }
    return (const struct sockaddr *)ss;
}

static void test_address_classification(void **state)
{
    (void)state;
    int wrong = 0;
    for (size_t i = 0; i < sizeof(address_cases) / sizeof(address_cases[0]);
         i++) {
        struct sockaddr_storage ss;
        const struct sockaddr *sa = parse_address(address_cases[i].text, &ss);
        bool got = vg_address_is_public(sa);
        if (got != address_cases[i].is_public) {
            print_error("%s: expected %s, got %s (%s)\n",
                        address_cases[i].text,
                        address_cases[i].is_public ? "public" : "not public",
                        got ? "public" : "not public", vg_address_kind(sa));
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
}

static void test_address_kind_names_the_range(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_string_equal(vg_address_kind(parse_address("127.0.0.1", &ss)),
                        "loopback");
    assert_string_equal(vg_address_kind(parse_address("10.0.0.1", &ss)),
                        "private");
    assert_string_equal(vg_address_kind(parse_address("169.254.169.254", &ss)),
                        "link-local");
    assert_string_equal(
        vg_address_kind(parse_address("::ffff:127.0.0.1", &ss)), "loopback");
    assert_string_equal(vg_address_kind(parse_address("8.8.8.8", &ss)),
                        "public");
    struct sockaddr other;
    memset(&other, 0, sizeof(other));
    other.sa_family = AF_UNIX;
    assert_false(vg_address_is_public(&other));
}

/* ---- checking a client's URL (vg_url_check_task_new) ------------------- */

static void on_checked(void *ctx)
{
    atomic_store((atomic_int *)ctx, 1);
}

/* The check the server makes of a webhook_url, waited for. */
static int check_outbound_url(const char *url, const char *schemes,
                              bool allow_private, const char *field,
                              vg_error *err)
{
    vg_fetch_task *task =
        vg_url_check_task_new(url, schemes, allow_private, field, err);
    if (task == NULL)
        return -1;
    vg_fetcher *f = vg_fetcher_start(NULL, NULL, NULL, err);
    assert_non_null(f);
    atomic_int done = 0;
    vg_fetcher_submit(f, task, on_checked, &done);
    for (int i = 0; i < 1000 && atomic_load(&done) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&done), 1);
    int rc = vg_url_check_result(task, err);
    vg_fetcher_release(f, task);
    vg_fetcher_stop(f);
    return rc;
}

static void expect_refused(const char *url, bool allow_private,
                           const char *words)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    int rc = check_outbound_url(url, "http,https", allow_private,
                                "webhook_url", &err);
    if (rc != -1)
        fail_msg("%s was accepted", url);
    assert_int_equal(err.status, 422);
    assert_string_equal(err.code, "invalid_url");
    assert_string_equal(err.field, "webhook_url");
    if (strstr(err.message, words) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", url, err.message, words);
}

static void expect_accepted(const char *url, bool allow_private)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    int rc = check_outbound_url(url, "http,https", allow_private,
                                "webhook_url", &err);
    if (rc != 0)
        fail_msg("%s was refused: %s", url, err.message);
}

static void test_outbound_url_refuses_other_schemes(void **state)
{
    (void)state;
    expect_refused("ftp://1.1.1.1/file", true, "scheme");
    expect_refused("file:///etc/passwd", true, "scheme");
    expect_refused("gopher://1.1.1.1/", true, "scheme");
    expect_refused("javascript:alert(1)", true, "");
    /* The check honours the list it is given. */
    vg_error err;
    assert_int_equal(check_outbound_url("http://1.1.1.1/", "https", false,
                                        "image_url", &err),
                     -1);
    assert_string_equal(err.field, "image_url");
    assert_int_equal(check_outbound_url("HTTPS://1.1.1.1/", "https", false,
                                        "image_url", &err),
                     0);
}

static void test_outbound_url_refuses_userinfo(void **state)
{
    (void)state;
    expect_refused("http://user:secret@1.1.1.1/hook", true, "user name");
    expect_refused("http://user@1.1.1.1/hook", true, "user name");
    expect_refused("https://:secret@1.1.1.1/hook", true, "user name");
}

static void test_outbound_url_refuses_malformed_and_long(void **state)
{
    (void)state;
    expect_refused("", true, "empty");
    expect_refused("not a url", true, "not a valid");
    expect_refused("http://", true, "");
    expect_refused("/relative/path", true, "not a valid");

    size_t n = VG_OUTBOUND_URL_MAX + 1;
    char *url = malloc(n + 1);
    assert_non_null(url);
    memset(url, 'a', n);
    memcpy(url, "http://1.1.1.1/", 15);
    url[n] = '\0';
    expect_refused(url, true, "2000");
    url[VG_OUTBOUND_URL_MAX] = '\0'; /* exactly at the limit */
    expect_accepted(url, false);
    free(url);
}

static void test_outbound_url_refuses_private_targets(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        "http://192.168.0.10:9000/x",
        "http://[fd00::1]/x",
        "http://2130706433/", /* 127.0.0.1 written as one number */
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        expect_refused(urls[i], false, "resolves to");
        expect_accepted(urls[i], true);
    }
    /* The message says what the address is and why it is refused. */
    expect_refused("http://10.0.0.1/hook", false,
                   "webhook_url resolves to a private address (10.0.0.1)");
    expect_refused("http://[::1]/hook", false, "a loopback address (::1)");
    expect_refused("http://169.254.169.254/", false, "link-local");
}

static void test_outbound_url_accepts_public_literals(void **state)
{
    (void)state;
    expect_accepted("https://1.1.1.1/hook", false);
    expect_accepted("http://8.8.8.8:8080/a/b?c=d#e", false);
    expect_accepted("https://[2606:4700:4700::1111]:8443/x", false);
}

/* ---- a receiver on loopback -------------------------------------------- */

#define MAX_HITS 32

typedef struct hit {
    char path[128];
    char id[64];
    char timestamp[32];
    char signature[256];
    char content_type[64];
    char user_agent[64];
    char *body;
    size_t len;
    int answered;
    int64_t at_ms;
} hit;

typedef struct receiver {
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t lock;
    /* The first `failures` requests get fail_status, the rest 204. */
    int failures;
    int fail_status;
    hit hits[MAX_HITS];
    int count;
} receiver;

typedef struct upload {
    char *data;
    size_t len;
} upload;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_header(struct MHD_Connection *conn, const char *name,
                        char *out, size_t n)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(out, n, "%s", v != NULL ? v : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)method;
    (void)version;
    receiver *r = cls;
    upload *up = *con_cls;
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        char *grown = realloc(up->data, up->len + *upload_data_size + 1);
        if (grown == NULL)
            return MHD_NO;
        up->data = grown;
        memcpy(up->data + up->len, upload_data, *upload_data_size);
        up->len += *upload_data_size;
        up->data[up->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }

    int status = 204;
    pthread_mutex_lock(&r->lock);
    if (r->count < MAX_HITS) {
        hit *h = &r->hits[r->count];
        snprintf(h->path, sizeof(h->path), "%s", url);
        copy_header(conn, "webhook-id", h->id, sizeof(h->id));
        copy_header(conn, "webhook-timestamp", h->timestamp,
                    sizeof(h->timestamp));
        copy_header(conn, "webhook-signature", h->signature,
                    sizeof(h->signature));
        copy_header(conn, "content-type", h->content_type,
                    sizeof(h->content_type));
        copy_header(conn, "user-agent", h->user_agent, sizeof(h->user_agent));
        h->body = up->data != NULL ? up->data : strdup("");
        h->len = up->len;
        up->data = NULL;
        up->len = 0;
        h->at_ms = wall_ms();
        if (r->count < r->failures)
            status = r->fail_status;
        h->answered = status;
    }
    r->count++;
    pthread_mutex_unlock(&r->lock);

    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (status >= 300 && status <= 399) {
        char location[64];
        snprintf(location, sizeof(location), "http://127.0.0.1:%d/elsewhere",
                 r->port);
        MHD_add_response_header(resp, "Location", location);
    }
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    upload *up = *con_cls;
    if (up != NULL) {
        free(up->data);
        free(up);
    }
    *con_cls = NULL;
}

static receiver *receiver_start(int failures, int fail_status)
{
    receiver *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    pthread_mutex_init(&r->lock, NULL);
    r->failures = failures;
    r->fail_status = fail_status;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = 0; /* the kernel picks */
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, r,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    assert_non_null(r->daemon);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    r->port = info->port;
    assert_true(r->port > 0);
    return r;
}

static int receiver_count(receiver *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void receiver_stop(receiver *r)
{
    MHD_stop_daemon(r->daemon);
    for (int i = 0; i < r->count && i < MAX_HITS; i++)
        free(r->hits[i].body);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- the connect-time restriction -------------------------------------- */

static CURLcode fetch(const char *url, bool allow_private)
{
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    vg_curl_restrict_addresses(easy, allow_private);
    CURLcode rc = curl_easy_perform(easy);
    curl_easy_cleanup(easy);
    return rc;
}

static void test_curl_restriction_refuses_private_at_connect(void **state)
{
    (void)state;
    assert_int_equal(vg_curl_global_init_once(), 0);
    receiver *r = receiver_start(0, 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/probe", r->port);
    assert_int_equal(fetch(url, false), CURLE_COULDNT_CONNECT);
    /* "localhost" is resolved by libcurl, then refused all the same. */
    snprintf(url, sizeof(url), "http://localhost:%d/probe", r->port);
    assert_int_equal(fetch(url, false), CURLE_COULDNT_CONNECT);
    assert_int_equal(receiver_count(r), 0);

    /* The noting variant says what it refused. */
    char note[VG_REFUSAL_NOTE_MAX] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/probe", r->port);
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    vg_curl_restrict_addresses_noting(easy, false, note);
    assert_int_equal(curl_easy_perform(easy), CURLE_COULDNT_CONNECT);
    curl_easy_cleanup(easy);
    assert_string_equal(note, "127.0.0.1 is a loopback address");
    assert_int_equal(receiver_count(r), 0);

    assert_int_equal(fetch(url, true), CURLE_OK);
    assert_int_equal(receiver_count(r), 1);
    receiver_stop(r);
}

/* ---- the engine, end to end -------------------------------------------- */

typedef struct fixture {
    char path[512];
    vg_store *store;
    vg_account account;
    vg_job job;
    char url[128];
} fixture;

static char request_json[] = "{\"prompt\":\"a cat\",\"duration\":4}";

static json_t *render_job(void *ctx, const vg_job *job)
{
    int *calls = ctx;
    if (calls != NULL)
        (*calls)++;
    return json_pack("{s:s, s:s, s:s}", "id", job->id, "status",
                     vg_job_state_name(job->state), "model", job->model);
}

/* A store with one account and one queued job whose webhook points at
 * `path` on the receiver. */
static void fixture_open(fixture *f, const char *name, receiver *r,
                         const char *path)
{
    memset(f, 0, sizeof(*f));
    vg_test_fresh_db("webhooks", name, f->path, sizeof(f->path));
    f->store = vg_test_open_store(f->path);
    vg_error err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(f->store->ops->create_account(f->store, "hooks", 1000,
                                                   &f->account, &err),
                     VG_STORE_OK);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d%s", r->port, path);

    vg_job *job = &f->job;
    vg_uuid_v4(job->id);
    snprintf(job->account_id, sizeof(job->account_id), "%s", f->account.id);
    snprintf(job->key_id, sizeof(job->key_id), "key-1");
    snprintf(job->model, sizeof(job->model), "vidgate-local");
    snprintf(job->provider, sizeof(job->provider), "local");
    job->request_json = request_json;
    job->webhook_url = f->url;
    job->price = 100;
    job->seed = 42;
    job->width = 640;
    job->height = 360;
    job->created_ms = wall_ms();
    if (f->store->ops->create_job(f->store, job, NULL, NULL, &err) !=
        VG_STORE_OK)
        fail_msg("create_job: %s", err.message);
}

static void fixture_succeed(fixture *f)
{
    vg_job done;
    memset(&done, 0, sizeof(done));
    snprintf(done.id, sizeof(done.id), "%s", f->job.id);
    snprintf(done.video_key, sizeof(done.video_key), "videos/%s.mp4",
             f->job.id);
    done.seed = 42;
    done.width = 640;
    done.height = 360;
    done.finished_ms = wall_ms();
    vg_error err;
    if (f->store->ops->succeed_job(f->store, &done, &err) != VG_STORE_OK)
        fail_msg("succeed_job: %s", err.message);
}

static void fixture_end(fixture *f, vg_job_state state)
{
    vg_error err;
    if (f->store->ops->end_job(f->store, f->job.id, state, "test_code",
                               "ended by the test", wall_ms(),
                               &err) != VG_STORE_OK)
        fail_msg("end_job: %s", err.message);
}

static void fixture_close(fixture *f)
{
    vg_store_close(f->store);
    vg_test_remove_db(f->path);
}

typedef struct found_delivery {
    vg_delivery d;
    int count;
} found_delivery;

static int collect_delivery(void *ctx, const vg_delivery *d)
{
    found_delivery *found = ctx;
    found->d = *d;
    found->count++;
    return 0;
}

/* The job's only delivery, as the store has it. */
static vg_delivery delivery_of(fixture *f)
{
    found_delivery found;
    memset(&found, 0, sizeof(found));
    vg_error err;
    if (f->store->ops->list_deliveries(f->store, f->job.id, collect_delivery,
                                       &found, &err) != VG_STORE_OK)
        fail_msg("list_deliveries: %s", err.message);
    assert_int_equal(found.count, 1);
    return found.d;
}

/* Waits up to timeout_ms for the delivery to leave pending. */
static vg_delivery wait_until_settled(fixture *f, int timeout_ms)
{
    int64_t deadline = wall_ms() + timeout_ms;
    for (;;) {
        vg_delivery d = delivery_of(f);
        if (d.state != VG_DELIVERY_PENDING)
            return d;
        if (wall_ms() > deadline)
            fail_msg("delivery %s still pending after %d ms (%d attempts, "
                     "last status %d, %s)",
                     d.id, timeout_ms, d.attempts, d.last_status,
                     d.last_error);
        usleep(20 * 1000);
    }
}

static vg_webhooks *start_engine(fixture *f, vg_webhook_config *cfg,
                                 int *render_calls)
{
    vg_error err;
    memset(&err, 0, sizeof(err));
    vg_webhooks *w =
        vg_webhooks_start(f->store, cfg, render_job, render_calls, &err);
    if (w == NULL)
        fail_msg("vg_webhooks_start: %s", err.message);
    vg_webhooks_poke(w);
    return w;
}

static void fast_config(vg_webhook_config *cfg)
{
    vg_webhook_config_defaults(cfg);
    cfg->allow_private = true;
    cfg->timeout_s = 5;
    cfg->retry_base_ms = 50;
}

/* Checks one request as a receiver would: Standard Webhooks headers, a
 * valid signature over the exact body, a fresh timestamp. */
static void check_signed_hit(const hit *h, const char *secret,
                             const char *delivery_id, const char *type,
                             const char *job_id)
{
    assert_string_equal(h->id, delivery_id);
    assert_string_equal(h->content_type, "application/json");
    assert_string_equal(h->user_agent, "vidgate-webhooks/1");
    char *end = NULL;
    long long ts = strtoll(h->timestamp, &end, 10);
    assert_true(end != h->timestamp && *end == '\0');
    long long skew = ts - h->at_ms / 1000;
    assert_true(skew >= -5 && skew <= 5);

    char expected[VG_WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(vg_webhook_sign(secret, h->id, ts, h->body, h->len,
                                     expected, sizeof(expected)),
                     0);
    assert_string_equal(h->signature, expected);

    json_error_t jerr;
    json_t *msg = json_loadb(h->body, h->len, 0, &jerr);
    if (msg == NULL)
        fail_msg("body is not JSON: %s", jerr.text);
    assert_string_equal(json_string_value(json_object_get(msg, "type")), type);
    const char *when = json_string_value(json_object_get(msg, "timestamp"));
    assert_non_null(when);
    /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(strlen(when), 24);
    assert_int_equal(when[10], 'T');
    assert_int_equal(when[23], 'Z');
    json_t *data = json_object_get(msg, "data");
    assert_string_equal(json_string_value(json_object_get(data, "id")),
                        job_id);
    json_decref(msg);
}

static void account_secret(fixture *f, char *out, size_t n)
{
    char candidate[64];
    vg_webhook_new_secret(candidate);
    vg_error err;
    if (f->store->ops->get_webhook_secret(f->store, f->account.id, candidate,
                                          out, n, &err) != VG_STORE_OK)
        fail_msg("get_webhook_secret: %s", err.message);
    /* The engine created the secret; ours was not taken. */
    assert_string_not_equal(out, candidate);
}

static void test_delivery_retries_until_2xx_and_signs_each_try(void **state)
{
    (void)state;
    receiver *r = receiver_start(2, 500);
    fixture f;
    fixture_open(&f, "retries", r, "/hook");
    fixture_succeed(&f);

    vg_delivery before = delivery_of(&f);
    assert_int_equal(before.state, VG_DELIVERY_PENDING);
    assert_int_equal(before.attempts, 0);
    assert_string_equal(before.url, f.url);

    vg_webhook_config cfg;
    fast_config(&cfg);
    int render_calls = 0;
    vg_webhooks *w = start_engine(&f, &cfg, &render_calls);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    assert_int_equal(d.state, VG_DELIVERY_DELIVERED);
    assert_int_equal(d.attempts, 3);
    assert_int_equal(d.last_status, 204);
    assert_string_equal(d.id, before.id);
    assert_int_equal(receiver_count(r), 3);
    assert_int_equal(render_calls, 3);

    char secret[256];
    account_secret(&f, secret, sizeof(secret));
    assert_int_equal(strncmp(secret, "whsec_", 6), 0);
    for (int i = 0; i < 3; i++) {
        check_signed_hit(&r->hits[i], secret, d.id, "job.succeeded", f.job.id);
        assert_string_equal(r->hits[i].path, "/hook");
    }
    assert_int_equal(r->hits[0].answered, 500);
    assert_int_equal(r->hits[1].answered, 500);
    assert_int_equal(r->hits[2].answered, 204);
    /* Backoff: the second gap is about twice the first. */
    int64_t gap1 = r->hits[1].at_ms - r->hits[0].at_ms;
    int64_t gap2 = r->hits[2].at_ms - r->hits[1].at_ms;
    assert_true(gap1 >= 45);
    assert_true(gap2 >= 95);

    fixture_close(&f);
    receiver_stop(r);
}

static void test_delivery_gives_up_after_the_deadline(void **state)
{
    (void)state;
    receiver *r = receiver_start(1000, 500);
    fixture f;
    fixture_open(&f, "give_up", r, "/hook");
    fixture_end(&f, VG_JOB_FAILED);

    vg_webhook_config cfg;
    fast_config(&cfg);
    cfg.give_up_after_ms = 300;
    vg_webhooks *w = start_engine(&f, &cfg, NULL);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    assert_int_equal(d.state, VG_DELIVERY_FAILED);
    assert_true(d.attempts >= 2);
    assert_int_equal(d.attempts, receiver_count(r));
    assert_int_equal(d.last_status, 500);
    assert_true(strlen(d.last_error) > 0);
    assert_int_equal(strncmp(r->hits[0].body, "{\"type\":\"job.failed\"", 20),
                     0);
    /* Attempts are due at +0, +50 and +150 ms; the next would be at
     * +350, past the deadline, so there can be no fourth (a slow machine
     * only makes the gaps longer, never more attempts). */
    assert_true(d.attempts <= 3);

    fixture_close(&f);
    receiver_stop(r);
}

static void test_delivery_survives_an_engine_restart(void **state)
{
    (void)state;
    receiver *r = receiver_start(2, 503);
    fixture f;
    fixture_open(&f, "restart", r, "/hook");
    fixture_end(&f, VG_JOB_CANCELLED);

    /* A long first gap leaves time to stop between attempts. */
    vg_webhook_config cfg;
    fast_config(&cfg);
    cfg.retry_base_ms = 1000;
    vg_webhooks *w = start_engine(&f, &cfg, NULL);
    int64_t deadline = wall_ms() + 10000;
    while (delivery_of(&f).attempts < 1) {
        if (wall_ms() > deadline)
            fail_msg("the first attempt never got recorded");
        usleep(10 * 1000);
    }
    vg_webhooks_stop(w);

    /* Everything the engine knew is in the database file. */
    vg_store_close(f.store);
    f.store = vg_test_open_store(f.path);
    vg_delivery mid = delivery_of(&f);
    assert_int_equal(mid.state, VG_DELIVERY_PENDING);
    assert_int_equal(mid.attempts, receiver_count(r));
    assert_int_equal(mid.last_status, 503);
    assert_true(mid.next_attempt_ms > 0);

    fast_config(&cfg);
    cfg.retry_base_ms = 50;
    w = start_engine(&f, &cfg, NULL);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    assert_int_equal(d.state, VG_DELIVERY_DELIVERED);
    assert_int_equal(d.attempts, 3);
    assert_int_equal(receiver_count(r), 3);
    char secret[256];
    account_secret(&f, secret, sizeof(secret));
    for (int i = 0; i < 3; i++)
        check_signed_hit(&r->hits[i], secret, d.id, "job.cancelled", f.job.id);

    fixture_close(&f);
    receiver_stop(r);
}

static void test_delivery_does_not_follow_redirects(void **state)
{
    (void)state;
    receiver *r = receiver_start(1000, 302);
    fixture f;
    fixture_open(&f, "redirect", r, "/hook");
    fixture_succeed(&f);

    vg_webhook_config cfg;
    fast_config(&cfg);
    cfg.give_up_after_ms = 120;
    vg_webhooks *w = start_engine(&f, &cfg, NULL);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    assert_int_equal(d.state, VG_DELIVERY_FAILED);
    assert_int_equal(d.last_status, 302);
    assert_non_null(strstr(d.last_error, "redirect"));
    for (int i = 0; i < receiver_count(r); i++)
        assert_string_equal(r->hits[i].path, "/hook");

    fixture_close(&f);
    receiver_stop(r);
}

static void test_delivery_refuses_private_targets_by_default(void **state)
{
    (void)state;
    receiver *r = receiver_start(0, 0);
    fixture f;
    fixture_open(&f, "private", r, "/hook");
    fixture_succeed(&f);

    /* The URL got into the store unchecked; the engine still refuses to
     * connect, which is what defeats DNS rebinding. */
    vg_webhook_config cfg;
    fast_config(&cfg);
    cfg.allow_private = false;
    cfg.give_up_after_ms = 120;
    vg_webhooks *w = start_engine(&f, &cfg, NULL);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    assert_int_equal(d.state, VG_DELIVERY_FAILED);
    assert_int_equal(d.last_status, 0);
    if (strstr(d.last_error, "127.0.0.1 is a loopback address") == NULL)
        fail_msg("last_error does not say why: %s", d.last_error);
    assert_int_equal(receiver_count(r), 0);

    fixture_close(&f);
    receiver_stop(r);
}

static void test_delivery_of_a_vanished_job_is_given_up(void **state)
{
    (void)state;
    receiver *r = receiver_start(0, 0);
    fixture f;
    fixture_open(&f, "vanished", r, "/hook");
    fixture_succeed(&f);

    /* The store never deletes jobs; a raw connection (foreign keys off,
     * SQLite's default) stands in for whatever might. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f.path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id = '%s'", f.job.id);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);

    vg_webhook_config cfg;
    fast_config(&cfg);
    int render_calls = 0;
    vg_webhooks *w = start_engine(&f, &cfg, &render_calls);
    vg_delivery d = wait_until_settled(&f, 15000);
    vg_webhooks_stop(w);

    /* Given up at once, not retried for a day. */
    assert_int_equal(d.state, VG_DELIVERY_FAILED);
    assert_int_equal(d.attempts, 1);
    assert_string_equal(d.last_error, "the job no longer exists");
    assert_int_equal(render_calls, 0);
    assert_int_equal(receiver_count(r), 0);

    fixture_close(&f);
    receiver_stop(r);
}

static void test_engine_refuses_a_bad_config(void **state)
{
    (void)state;
    vg_webhook_config cfg;
    vg_webhook_config_defaults(&cfg);
    cfg.timeout_s = 0;
    vg_error err;
    memset(&err, 0, sizeof(err));
    /* The configuration is checked before the store is touched. */
    vg_store fake = {.ops = NULL};
    assert_null(vg_webhooks_start(&fake, &cfg, render_job, NULL, &err));
    assert_string_equal(err.code, "config_error");
    vg_webhook_config_defaults(&cfg);
    assert_null(vg_webhooks_start(&fake, &cfg, NULL, NULL, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_matches_the_published_vector),
        cmocka_unit_test(test_signature_covers_id_timestamp_and_body),
        cmocka_unit_test(test_signature_refuses_bad_secret_or_small_buffer),
        cmocka_unit_test(test_new_secret_is_whsec_and_32_random_bytes),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_address_classification),
        cmocka_unit_test(test_address_kind_names_the_range),
        cmocka_unit_test(test_outbound_url_refuses_other_schemes),
        cmocka_unit_test(test_outbound_url_refuses_userinfo),
        cmocka_unit_test(test_outbound_url_refuses_malformed_and_long),
        cmocka_unit_test(test_outbound_url_refuses_private_targets),
        cmocka_unit_test(test_outbound_url_accepts_public_literals),
        cmocka_unit_test(test_curl_restriction_refuses_private_at_connect),
        cmocka_unit_test(test_delivery_retries_until_2xx_and_signs_each_try),
        cmocka_unit_test(test_delivery_gives_up_after_the_deadline),
        cmocka_unit_test(test_delivery_survives_an_engine_restart),
        cmocka_unit_test(test_delivery_does_not_follow_redirects),
        cmocka_unit_test(test_delivery_refuses_private_targets_by_default),
        cmocka_unit_test(test_delivery_of_a_vanished_job_is_given_up),
        cmocka_unit_test(test_engine_refuses_a_bad_config),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
