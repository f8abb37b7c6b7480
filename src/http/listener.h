/*
 * listener.h - the listening socket and the thread that accepts on it
 * (server.c's helper).
 *
 * The daemon has no listening socket of its own (MHD_USE_NO_LISTEN_SOCKET):
 * this thread accepts and hands each connection over with
 * MHD_add_connection. Stopping is closing the socket, so a draining server
 * refuses new connections at once while it finishes the ones it has.
 * libmicrohttpd's own way, MHD_quiesce_daemon, races the epoll workers of
 * a thread pool for the listening socket's removal (0.9.75 daemon.c,
 * MHD_epoll_ "Failed to remove listen FD from epoll set") and aborts the
 * process when it loses.
 *
 * At its limit the thread stops accepting, and new connections wait in
 * the kernel's backlog until one closes. The daemon's own limit must be
 * out of reach (vg_listener_daemon_limit): 0.9.75 keeps a mutex locked
 * when it turns away a connection handed over past it
 * (new_connection_process_), and its HTTP threads then hang.
 */
#ifndef VG_HTTP_LISTENER_H
#define VG_HTTP_LISTENER_H

#include <microhttpd.h>
#include <stdbool.h>

#include "core/config.h"

typedef struct vg_listener vg_listener;

/* Binds and listens on the configured host and port; NULL (logged) when
 * it cannot. */
vg_listener *vg_listener_open(const vg_config *cfg);
/* The port it listens on (the one the system chose for port 0). */
int vg_listener_port(const vg_listener *l);
/* The connection limit to give a daemon of `threads` threads that this
 * listener feeds with at most `limit` connections: high enough that no
 * thread reaches its share of it, however they are spread. */
unsigned vg_listener_daemon_limit(unsigned limit, unsigned threads);
/* Starts accepting into daemon, at most limit connections open at once;
 * -1 when the thread cannot start. */
int vg_listener_start(vg_listener *l, struct MHD_Daemon *daemon,
                      unsigned limit);
/* From the daemon's connection notifications: one it was handed has
 * closed. */
void vg_listener_closed(vg_listener *l);
/* Stops accepting and closes the socket: new connections are refused.
 * The connections already handed over are the daemon's, and may still
 * report their closing. */
void vg_listener_close(vg_listener *l);
/* Closes it if still open and frees it: after the daemon has stopped. */
void vg_listener_free(vg_listener *l);

#endif
