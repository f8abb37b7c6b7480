/*
 * guard.h - keeps slow clients from holding connections (server.c's
 * helper).
 *
 * libmicrohttpd's own timeout only drops a connection that sends
 * nothing at all, so a client trickling one header byte a second holds
 * its connection forever, and a thousand of them hold the server. The
 * guard follows every connection from accept to close and drops:
 *
 *  - a connection whose request head is not complete within
 *    header_timeout_s of its opening (it gets a 408 envelope), or, on a
 *    kept-alive connection, within connection_timeout_s of the previous
 *    answer (closed silently, as an idle keep-alive is);
 *  - a body that, after a first header_timeout_s of grace, arrives slower
 *    than min_body_bytes_per_s on average;
 *  - when more than max_connections are open, the connection that has
 *    waited longest for its head, so that a client that sends its request
 *    at once is still served (the daemon accepts a reserve above
 *    max_connections for this).
 *
 * A connection whose request is being handled (a handler working, a
 * client waiting for its video, an event stream) is never touched.
 * Dropping is shutdown(2) on the socket from the guard's thread; the
 * daemon's own thread then sees the end of the stream and closes it.
 */
#ifndef VG_HTTP_GUARD_H
#define VG_HTTP_GUARD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

typedef struct vg_guard vg_guard;

/* Starts the guard's thread; NULL when it cannot. */
vg_guard *vg_guard_start(const vg_config *cfg);
/* Stops the thread and frees the guard: after MHD_stop_daemon. */
void vg_guard_stop(vg_guard *guard);

/* How many connections the daemon may hold: max_connections and the
 * reserve that lets a prompt client in while slow ones fill the rest. */
unsigned vg_guard_daemon_limit(const vg_config *cfg);

/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void vg_guard_notify(void *cls, struct MHD_Connection *conn,
                     void **socket_context,
                     enum MHD_ConnectionNotificationCode code);

/* The connection's state, from the request callbacks: its head has
 * arrived (and a body follows, or not), n more body bytes arrived, the
 * body is complete, the answer has been sent. */
void vg_guard_head_done(struct MHD_Connection *conn, bool body_follows);
void vg_guard_body_bytes(struct MHD_Connection *conn, size_t n);
void vg_guard_body_done(struct MHD_Connection *conn);
void vg_guard_request_done(struct MHD_Connection *conn);

#endif
