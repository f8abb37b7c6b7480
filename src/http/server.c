/*
 * server.c - the libmicrohttpd daemon and the life of one request.
 *
 * The daemon runs a small pool of epoll threads; no thread per connection.
 * For each request: the first callback has the headers (route, method and
 * authentication are checked there, so a refused upload is never read),
 * the next ones stream the body (JSON into memory up to a limit, multipart
 * file parts straight to disk), the last one runs the handler. A handler
 * that waits for a job suspends the connection, which then holds no thread
 * until the job's waiter resumes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "http/body.h"
#include "http/guard.h"
#include "http/http.h"
#include "http/listener.h"
#include "http/router.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/parse.h"

/* How much lower the HTTP threads run (see vg_serve). */
#define HTTP_NICE 4

static atomic_int requests_in_flight;

/* The most bytes of a refused body read (and dropped) before answering. */
#define VG_DISCARD_LIMIT (16 * 1024 * 1024)

static void stop_waiting(vg_http_request *req);

/* Request ids must be unique, not secret: a per-thread xorshift generator
 * seeded from the system's entropy is plenty and costs no system call. */
static void new_request_id(char id[37])
{
    static __thread uint64_t state[2];
    if (state[0] == 0 && state[1] == 0) {
        state[0] = vg_random_u64() | 1;
        state[1] = vg_random_u64();
    }
    unsigned char b[16];
    for (int half = 0; half < 2; half++) {
        uint64_t x = state[0], y = state[1];
        state[0] = y;
        x ^= x << 23;
        state[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
        uint64_t r = state[1] + y;
        memcpy(b + 8 * half, &r, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char digits[] = "0123456789abcdef";
    int at = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            id[at++] = '-';
        id[at++] = digits[b[i] >> 4];
        id[at++] = digits[b[i] & 15];
    }
    id[at] = '\0';
}

/* A client-supplied request id is kept when it is short and plain, so
 * callers can follow one request through their logs and ours. */
static void pick_request_id(struct MHD_Connection *conn, char id[37])
{
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    "X-Request-Id");
    if (given != NULL && strlen(given) <= 36 && *given != '\0') {
        bool plain = true;
        for (const char *p = given; *p; p++)
            if (!(*p == '-' || *p == '_' || *p == '.' ||
                  (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= 'A' && *p <= 'Z')))
                plain = false;
        if (plain) {
            snprintf(id, 37, "%s", given);
            return;
        }
    }
    new_request_id(id);
}

static const char *credential_of(struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        while (*auth == ' ')
            auth++;
        return auth;
    }
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-KEY");
}

/* ---- request life -------------------------------------------------- */

static vg_http_request *new_request(vg_app *app,
                                    struct MHD_Connection *conn,
                                    const char *url, const char *method)
{
    vg_http_request *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    vg_arena_init(&req->arena);
    vg_timer_init(&req->wait_timer, NULL);
    req->app = app;
    req->conn = conn;
    req->started_ns = vg_monotonic_ns();
    req->method = vg_arena_strdup(&req->arena, method);
    req->path = vg_arena_strdup(&req->arena, url);
    pick_request_id(conn, req->id);
    atomic_fetch_add(&requests_in_flight, 1);
    return req;
}

static void free_request(vg_http_request *req)
{
    stop_waiting(req);
    for (vg_cleanup *c = req->cleanups; c != NULL; c = c->next)
        c->fn(c->arg);
    vg_body_release(req);
    vg_arena_free(&req->arena);
    free(req);
    atomic_fetch_sub(&requests_in_flight, 1);
}

/* What the request head says about itself: its size and its framing. */
typedef struct head_scan {
    size_t size;
    int n_length, n_encoding, n_host;
    bool lengths_differ;
    const char *length, *encoding;
} head_scan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    head_scan *scan = cls;
    scan->size += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (kind != MHD_HEADER_KIND)
        return MHD_YES;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (scan->n_length++ > 0 && strcmp(scan->length, value ? value : "")
                                        != 0)
            scan->lengths_differ = true;
        if (scan->length == NULL)
            scan->length = value ? value : "";
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        scan->n_encoding++;
        scan->encoding = value ? value : "";
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        scan->n_host++;
    }
    return MHD_YES;
}

/* Request line (query string included) and headers, as the client sent
 * them (near enough), and the framing headers. */
static void scan_head(vg_http_request *req, head_scan *scan)
{
    memset(scan, 0, sizeof(*scan));
    scan->size = strlen(req->method) + strlen(req->path) + 12;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, scan_header,
                              scan);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, scan_header,
                              scan);
}

/* Answers at once and closes the connection: after a framing error the
 * rest of the bytes cannot be trusted to be a body or a next request
 * (RFC 9112 6.3), so none of them is read. */
static enum MHD_Result refuse_and_close(vg_http_request *req, int status,
                                        const char *code,
                                        const char *message)
{
    vg_error err;
    vg_error_set(&err, status, code, NULL, "%s", message);
    vg_http_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    return vg_http_send_error(req, &err);
}

/* RFC 9112: one Host for HTTP/1.1 (MHD's own check answers in HTML, so
 * it is off and done here), no space in the target, one length. */
static enum MHD_Result check_head(vg_http_request *req, const head_scan *scan,
                                  const char *version)
{
    if (scan->n_host > 1 ||
        (scan->n_host == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
        return refuse_and_close(req, 400, "bad_request",
                                "an HTTP/1.1 request needs exactly one "
                                "Host header");
    if (strchr(req->path, ' ') != NULL)
        return refuse_and_close(req, 400, "bad_request",
                                "the request target contains a space");
    if (scan->lengths_differ)
        return refuse_and_close(req, 400, "bad_request",
                                "the request has two different "
                                "Content-Length headers");
    if (scan->n_encoding > 0 && scan->n_length > 0)
        return refuse_and_close(req, 400, "bad_request",
                                "the request has both Content-Length and "
                                "Transfer-Encoding");
    if (scan->n_encoding > 1 || (scan->n_encoding == 1 &&
                                 strcasecmp(scan->encoding, "chunked") != 0))
        return refuse_and_close(req, 501, "not_implemented",
                                "the only transfer coding accepted is "
                                "chunked");
    return MHD_YES;
}

/* Records why a request is refused. The answer goes out at the final
 * callback, after the body (if any) has been read and dropped: answering
 * earlier makes libmicrohttpd close the connection, which costs clients a
 * reconnect and the body's sender a reset. Only a body too large to be
 * worth reading is answered at once. */
static enum MHD_Result refuse(vg_http_request *req, const vg_error *err)
{
    if (!req->body_failed) {
        req->body_error = *err;
        req->body_failed = true;
    }
    if (vg_body_declared_length(req) > VG_DISCARD_LIMIT)
        return vg_http_send_error(req, &req->body_error);
    return MHD_YES;
}

static enum MHD_Result on_first_call(vg_app *app, vg_http_request *req,
                                     const char *version)
{
    const char *allowed = NULL;
    vg_error err;
    head_scan scan;
    scan_head(req, &scan);
    vg_guard_head_done(req->conn,
                       scan.n_encoding > 0 ||
                           (scan.length != NULL &&
                            strcmp(scan.length, "0") != 0));
    if (check_head(req, &scan, version) != MHD_YES || req->responded)
        return req->responded ? MHD_YES : MHD_NO;
    if ((int64_t)scan.size > app->config.max_header_bytes) {
        vg_error_set(&err, 431, "headers_too_large", NULL,
                     "the request headers are larger than %lld bytes",
                     (long long)app->config.max_header_bytes);
        return vg_http_send_error(req, &err);
    }
    req->route = vg_router_match(vg_api_routes, req->method, req->path,
                                 req->params, &req->n_params, &req->arena,
                                 &allowed);
    if (req->route == NULL && allowed == NULL) {
        vg_error_set(&err, 404, "not_found", NULL, "no route for %s %s",
                     req->method, req->path);
        return refuse(req, &err);
    }
    if (req->route == NULL) {
        vg_error_set(&err, 405, "method_not_allowed", NULL,
                     "%s is not allowed here; allowed: %s", req->method,
                     allowed);
        vg_http_add_header(req, "Allow", allowed);
        return refuse(req, &err);
    }
    if (req->route->authenticated) {
        if (vg_auth_authenticate(&app->auth, credential_of(req->conn),
                                 &req->principal, &err) != 0)
            return refuse(req, &err);
        int rpm = req->principal.rpm_limit >= 0
                      ? req->principal.rpm_limit
                      : app->config.requests_per_minute;
        int wait_s = rpm > 0 && app->ratelimit != NULL
                         ? vg_ratelimit_take(app->ratelimit,
                                             req->principal.key_id, rpm,
                                             vg_monotonic_ms())
                         : 0;
        if (wait_s > 0) {
            char retry[16];
            snprintf(retry, sizeof(retry), "%d", wait_s);
            vg_http_add_header(req, "Retry-After", retry);
            vg_error_set(&err, 429, "rate_limited", NULL,
                         "this API key may make %d requests a minute; "
                         "retry in %d s",
                         rpm, wait_s);
            return refuse(req, &err);
        }
    }
    if (vg_body_prepare(req) != 0)
        return refuse(req, &req->body_error);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    vg_app *app = cls;
    vg_http_request *req = *con_cls;
    if (req == NULL) {
        req = new_request(app, conn, url, method);
        if (req == NULL)
            return MHD_NO;
        *con_cls = req;
        return on_first_call(app, req, version);
    }
    if (*upload_data_size != 0)
        vg_guard_body_bytes(conn, *upload_data_size);
    if (req->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (req->body_failed)
            req->discarded += (int64_t)*upload_data_size;
        else
            vg_body_feed(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* A refused body is read and dropped up to a bound, so that
         * clients that send it all before reading get their answer
         * instead of a reset connection; past the bound we hang up. */
        if (req->body_failed && req->discarded > VG_DISCARD_LIMIT)
            return vg_http_send_error(req, &req->body_error);
        return MHD_YES;
    }
    if (req->suspended) {
        req->suspended = false;
        stop_waiting(req);
        return req->route->resume(app, req);
    }
    vg_guard_body_done(conn);
    vg_body_finish(req);
    if (req->body_failed)
        return vg_http_send_error(req, &req->body_error);
    return req->route->handle(app, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    vg_guard_request_done(conn);
    vg_http_request *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    /* Whole microseconds: enough precision, and short log lines. */
    vg_access_entry entry = {
        .request_id = req->id,
        .method = req->method,
        .path = req->path,
        .status = req->status,
        .duration_ms = (double)(vg_monotonic_ns() - req->started_ns) / 1e6,
        .bytes = (long long)req->bytes_out,
        .account = req->principal.account_id[0] ? req->principal.account_id
                                                : NULL,
        .aborted = why != MHD_REQUEST_TERMINATED_COMPLETED_OK,
    };
    vg_log_access(&entry);
    free_request(req);
}

/* ---- waiting for jobs ---------------------------------------------- */

/* The job's listener and the deadline race to wake a waiting request;
 * the one that takes `parked` from 1 to 0 resumes it. */
static void wake_waiter(vg_http_request *req)
{
    int expected = 1;
    if (atomic_compare_exchange_strong(&req->parked, &expected, 0))
        MHD_resume_connection(req->conn);
}

static void on_job_event(vg_job_listener *listener, const vg_job_event *ev)
{
    if (ev->done)
        wake_waiter((vg_http_request *)((char *)listener -
                                        offsetof(vg_http_request,
                                                 listener)));
}

static void on_wait_timeout(vg_timer *timer)
{
    wake_waiter((vg_http_request *)((char *)timer -
                                    offsetof(vg_http_request, wait_timer)));
}

int vg_http_suspend(vg_http_request *req)
{
    req->suspended = true;
    atomic_store(&req->parked, 1);
    MHD_suspend_connection(req->conn);
    return MHD_YES;
}

void vg_http_wake(vg_http_request *req)
{
    wake_waiter(req);
}

int vg_http_wait_for_job(vg_http_request *req, const char *job_id,
                         int64_t deadline_ms)
{
    snprintf(req->wait_job, sizeof(req->wait_job), "%s", job_id);
    req->listener.notify = on_job_event;
    req->wait_timer.fire = on_wait_timeout;
    req->suspended = true;
    /* Suspend before registering: the job may end at once on a worker,
     * and resuming needs a suspended connection. */
    atomic_store(&req->parked, 1);
    MHD_suspend_connection(req->conn);
    req->wait_deadline_ms = deadline_ms;
    vg_job_event now;
    if (vg_jobs_listen(req->app->jobs, job_id, &req->listener, &now) == 0) {
        if (deadline_ms > 0)
            vg_timer_set(&req->wait_timer, deadline_ms);
    } else if (vg_jobs_draining(req->app->jobs)) {
        wake_waiter(req); /* stopping: answer with what the store says */
    } else {
        /* Not (or not yet) in this process's table: it has ended, is
         * being queued by the request that created it, or runs on
         * another instance. Look again in the store shortly. */
        int64_t at = vg_timers_now_ms() + VG_WAIT_POLL_MS;
        vg_timer_set(&req->wait_timer,
                     deadline_ms > 0 && deadline_ms < at ? deadline_ms : at);
    }
    return MHD_YES;
}

/* Whatever may still wake the request is detached. */
static void stop_waiting(vg_http_request *req)
{
    vg_timer_cancel(&req->wait_timer);
    if (req->app->jobs != NULL)
        vg_jobs_unlisten(req->app->jobs, &req->listener);
}

/* ---- the daemon ---------------------------------------------------- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    /* libmicrohttpd 0.9.75 says this even when the logger is the first
     * option (as it is here); it is noise in the operator's log. */
    if (strstr(msg, "EXTERNAL_LOGGER is not the first option") != NULL)
        return;
    /* A client that leaves during a response (an event stream it
     * closes, a download it stops): the access log line already says
     * "aborted", and this would repeat it as a warning. */
    if (strstr(msg, "socket is no longer available for sending") != NULL)
        return;
    vg_log_warn("http: %s", msg);
}

/* The daemon's connection notifications go to the guard, and its
 * closings to the listener that counts connections against the limit. */
typedef struct {
    vg_guard *guard;
    vg_listener *listener;
} connection_watch;

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    connection_watch *w = cls;
    vg_guard_notify(w->guard, conn, socket_context, code);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        vg_listener_closed(w->listener);
}

struct vg_http_server {
    vg_listener *listener;
    vg_guard *guard;
    struct MHD_Daemon *daemon;
    connection_watch watch;
};

vg_http_server *vg_http_server_start(vg_app *app)
{
    vg_config *cfg = &app->config;
    vg_http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        vg_log_error("cannot start the HTTP server: out of memory");
        return NULL;
    }
    srv->listener = vg_listener_open(cfg);
    if (srv->listener == NULL) {
        free(srv);
        return NULL;
    }
    if (vg_timers_start() != 0) {
        vg_log_error("cannot start the timer thread");
        vg_listener_free(srv->listener);
        free(srv);
        return NULL;
    }
    srv->guard = vg_guard_start(cfg);
    if (srv->guard == NULL) {
        vg_log_error("cannot start the connection guard's thread");
        vg_timers_stop();
        vg_listener_free(srv->listener);
        free(srv);
        return NULL;
    }
    srv->watch = (connection_watch){srv->guard, srv->listener};
    /* TURBO: read and write before asking epoll, which saves a system
     * call whenever the socket is ready (it usually is). The listener
     * accepts (listener.h says why the daemon does not). */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_USE_ITC |
                     MHD_USE_NO_LISTEN_SOCKET;
    /* Headers a little over the limit still fit in MHD's buffer, so they
     * get our JSON 431 (on_first_call); only far larger ones meet MHD's
     * own. Keep it no larger: it is cleared per request, and every client
     * waiting for a job holds one (10,000 waiting clients hold 120 MiB
     * of them with the default 8 KiB limit). */
    size_t memory = (size_t)cfg->max_header_bytes + 4096;
    /* Intake yields to the work it feeds: the HTTP threads (started below,
     * inheriting this thread's nice value) run a little below the store's
     * writer, the job workers and the upstream engine, so that a flood of
     * submits on a busy machine slows intake rather than starving
     * dispatch (which would leave accepted jobs waiting ever longer). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), HTTP_NICE) != 0)
        vg_log_warn("cannot lower the HTTP threads' priority: %s",
                    strerror(errno));
    unsigned threads = (unsigned)(cfg->http_threads > 0
                                      ? cfg->http_threads
                                      : VG_DEFAULT_HTTP_THREADS);
    unsigned limit = vg_guard_daemon_limit(cfg);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, app,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        vg_listener_daemon_limit(limit, threads),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections_per_ip,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv->watch,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        /* 0, not 1: MHD's strict mode answers a missing Host and a
         * space in the target with its own HTML page; check_head
         * refuses both with the envelope instead. */
        MHD_OPTION_STRICT_FOR_CLIENT, 0, MHD_OPTION_END);
    if (daemon != NULL &&
        vg_listener_start(srv->listener, daemon, limit) != 0) {
        vg_log_error("cannot start the listener's thread");
        MHD_stop_daemon(daemon);
        daemon = NULL;
    } else if (daemon == NULL) {
        vg_log_error("cannot start the HTTP daemon");
    }
    if (daemon == NULL) {
        vg_guard_stop(srv->guard);
        vg_timers_stop();
        vg_listener_free(srv->listener);
        free(srv);
        return NULL;
    }
    srv->daemon = daemon;
    vg_log_json("info", json_pack("{s:s,s:s,s:i}", "msg", "listening",
                                  "host", cfg->listen_host, "port",
                                  vg_listener_port(srv->listener)));
    return srv;
}

void vg_http_server_close(vg_http_server *srv)
{
    vg_listener_close(srv->listener);
}

void vg_http_server_stop(vg_http_server *srv)
{
    /* Streams get their last event; requests answered meanwhile (waits
     * that ended with the jobs' drain) get 2 s to be sent. */
    vg_http_streams_end_all();
    for (int i = 0; i < 200 && atomic_load(&requests_in_flight) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(srv->daemon);
    vg_listener_free(srv->listener);
    vg_guard_stop(srv->guard);
    vg_timers_stop();
    free(srv);
}
