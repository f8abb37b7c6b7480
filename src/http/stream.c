/*
 * stream.c - responses produced while they are sent: Server-Sent Events.
 *
 * A stream holds no thread while it has nothing to say: its connection is
 * suspended and a wake (a job event, a timer) resumes it, so thousands of
 * clients can follow jobs at the cost of their buffers.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

struct vg_http_stream {
    vg_http_stream *prev, *next; /* every open stream, for shutdown */
    bool ending; /* the server is stopping: flush and end */
    pthread_mutex_t lock;
    struct MHD_Connection *conn;
    const vg_http_stream_ops *ops;
    void *ctx;
    vg_buf out;
    size_t sent;
    bool complete;
    bool dirty;  /* woken since produce last ran */
    bool parked; /* the connection is suspended, waiting for a wake */
};

void vg_buf_append(vg_buf *buf, const char *data, size_t len)
{
    if (buf->len + len + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 1024;
        while (cap < buf->len + len + 1)
            cap *= 2;
        char *grown = realloc(buf->data, cap);
        if (grown == NULL)
            return;
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void vg_buf_printf(vg_buf *buf, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n > 0)
        vg_buf_append(buf, text, (size_t)n);
    free(text);
}

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static vg_http_stream *streams;

void vg_http_streams_end_all(void)
{
    pthread_mutex_lock(&streams_lock);
    for (vg_http_stream *s = streams; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        s->ending = true;
        pthread_mutex_unlock(&s->lock);
        vg_http_stream_wake(s);
    }
    pthread_mutex_unlock(&streams_lock);
}

void vg_http_stream_wake(vg_http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->dirty = true;
    if (s->parked) {
        s->parked = false;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->lock);
}

static ssize_t copy_out(vg_http_stream *s, char *buf, size_t max)
{
    size_t n = s->out.len - s->sent;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->sent, n);
    s->sent += n;
    if (s->sent == s->out.len)
        s->sent = s->out.len = 0;
    return (ssize_t)n;
}

/* libmicrohttpd asks for more whenever the socket has room. With nothing
 * to send the connection is suspended (the pattern microhttpd.h gives for
 * "no data yet"; returning 0 alone would spin), and a wake resumes it. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    vg_http_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->out.len > s->sent)
            return copy_out(s, buf, max);
        if (s->complete)
            return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&s->lock);
        s->dirty = false;
        bool ending = s->ending;
        pthread_mutex_unlock(&s->lock);
        if (ending)
            return MHD_CONTENT_READER_END_OF_STREAM;
        s->complete = s->ops->produce(s->ctx, &s->out) != 0;
        if (s->out.len > s->sent || s->complete)
            continue;
        pthread_mutex_lock(&s->lock);
        if (s->dirty) {
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        s->parked = true;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
}

static void stream_free(void *cls)
{
    vg_http_stream *s = cls;
    pthread_mutex_lock(&streams_lock);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&streams_lock);
    s->ops->close(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s->out.data);
    free(s);
}

int vg_http_send_stream(vg_http_request *req, const char *content_type,
                        const vg_http_stream_ops *ops, void *ctx,
                        vg_http_stream **stream)
{
    vg_http_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        ops->close(ctx);
        return MHD_NO;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->conn = req->conn;
    s->ops = ops;
    s->ctx = ctx;
    *stream = s;
    pthread_mutex_lock(&streams_lock);
    s->next = streams;
    if (streams != NULL)
        streams->prev = s;
    streams = s;
    pthread_mutex_unlock(&streams_lock);
    struct MHD_Response *response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (response == NULL) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "no-store");
    /* Proxies such as nginx would otherwise hold events back. */
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    MHD_add_response_header(response, "X-Request-Id", req->id);
    for (vg_header *h = req->headers; h != NULL; h = h->next)
        MHD_add_response_header(response, h->name, h->value);
    req->status = 200;
    req->responded = true;
    enum MHD_Result rc = MHD_queue_response(req->conn, 200, response);
    MHD_destroy_response(response);
    return rc;
}
