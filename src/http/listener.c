/*
 * listener.c - accepts connections for the daemon; see listener.h.
 */
#include "http/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

/* Connections taken per wake-up before looking at the stop flag again. */
#define ACCEPT_BATCH 64
/* Out of descriptors or memory: how long to leave the backlog alone. */
#define ACCEPT_BACKOFF_MS 100

struct vg_listener {
    int fd;
    int wake; /* eventfd: stop, or room again below the limit */
    int port;
    struct MHD_Daemon *daemon;
    unsigned limit;
    atomic_uint open;
    atomic_bool stop;
    bool started;
    pthread_t thread;
};

static int resolve(const vg_config *cfg, struct sockaddr_storage *sa,
                   socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        vg_log_error("cannot resolve listen address %s: %s",
                     cfg->listen_host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int bind_and_listen(const vg_config *cfg, int *port_out)
{
    struct sockaddr_storage sa;
    socklen_t len;
    if (resolve(cfg, &sa, &len) != 0)
        return -1;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
        vg_log_error("cannot open a socket: %s", strerror(errno));
        return -1;
    }
    int on = 1;
    /* SO_REUSEADDR lets a restart bind while the last run's connections
     * linger in TIME_WAIT; a port another process listens on is still
     * refused. An IPv6 address means IPv6 only, as the host says. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 1024) != 0) {
        vg_log_error("cannot listen on %s:%d: %s", cfg->listen_host,
                     cfg->listen_port, strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        vg_log_error("cannot read the listening port: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *port_out = ntohs(sa.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&sa)->sin6_port
                          : ((struct sockaddr_in *)&sa)->sin_port);
    return fd;
}

vg_listener *vg_listener_open(const vg_config *cfg)
{
    vg_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->fd = bind_and_listen(cfg, &l->port);
    l->wake = l->fd < 0 ? -1 : eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake < 0) {
        if (l->fd >= 0) {
            vg_log_error("cannot make an eventfd: %s", strerror(errno));
            close(l->fd);
        }
        free(l);
        return NULL;
    }
    atomic_init(&l->open, 0);
    atomic_init(&l->stop, false);
    return l;
}

int vg_listener_port(const vg_listener *l)
{
    return l->port;
}

static void wake(vg_listener *l)
{
    uint64_t one = 1;
    ssize_t n = write(l->wake, &one, sizeof(one));
    (void)n; /* a full counter already wakes the thread */
}

/* Takes what the backlog holds, up to a batch; false when accepting
 * failed for want of descriptors or memory (then back off). */
static bool accept_some(vg_listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (atomic_load(&l->open) >= l->limit)
            return true;
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        int fd = accept4(l->fd, (struct sockaddr *)&addr, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            vg_log_warn("http: cannot accept a connection: %s",
                        strerror(errno));
            return false;
        }
        /* Counted before it is handed over: the daemon may close it (and
         * report so) before the call returns. On failure (the address
         * over its per-IP limit, memory) the daemon has closed the
         * socket itself and reports nothing. */
        atomic_fetch_add(&l->open, 1);
        if (MHD_add_connection(l->daemon, fd, (struct sockaddr *)&addr,
                               len) != MHD_YES)
            vg_listener_closed(l);
    }
    return true;
}

static void *accept_main(void *arg)
{
    pthread_setname_np(pthread_self(), "vg-accept");
    vg_listener *l = arg;
    int timeout = -1;
    while (!atomic_load(&l->stop)) {
        bool room = atomic_load(&l->open) < l->limit;
        struct pollfd p[2] = {{.fd = l->wake, .events = POLLIN},
                              {.fd = room && timeout < 0 ? l->fd : -1,
                               .events = POLLIN}};
        if (poll(p, 2, timeout) < 0 && errno != EINTR) {
            vg_log_error("http: the listener cannot poll: %s",
                         strerror(errno));
            timeout = ACCEPT_BACKOFF_MS;
            continue;
        }
        if (p[0].revents & POLLIN) {
            uint64_t n;
            ssize_t r = read(l->wake, &n, sizeof(n));
            (void)r;
        }
        if (atomic_load(&l->stop))
            break;
        /* After a back-off, and whenever the socket is readable, try. */
        if (timeout >= 0 || (p[1].revents & POLLIN))
            timeout = accept_some(l) ? -1 : ACCEPT_BACKOFF_MS;
    }
    return NULL;
}

unsigned vg_listener_daemon_limit(unsigned limit, unsigned threads)
{
    /* Each thread's share is the limit over the threads. */
    return limit * (threads > 0 ? threads : 1);
}

int vg_listener_start(vg_listener *l, struct MHD_Daemon *daemon,
                      unsigned limit)
{
    l->daemon = daemon;
    l->limit = limit > 0 ? limit : 1;
    if (pthread_create(&l->thread, NULL, accept_main, l) != 0)
        return -1;
    l->started = true;
    return 0;
}

void vg_listener_closed(vg_listener *l)
{
    /* From full to one below: the thread may be waiting for room (after
     * vg_listener_close nobody reads the eventfd; it is still open). */
    if (atomic_fetch_sub(&l->open, 1) == l->limit)
        wake(l);
}

void vg_listener_close(vg_listener *l)
{
    if (l->started) {
        atomic_store(&l->stop, true);
        wake(l);
        pthread_join(l->thread, NULL);
        l->started = false;
    }
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

void vg_listener_free(vg_listener *l)
{
    if (l == NULL)
        return;
    vg_listener_close(l);
    close(l->wake);
    free(l);
}
