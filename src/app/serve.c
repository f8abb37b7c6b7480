/*
 * serve.c - the server process's life: signals, the HTTP server, and the
 * order of a drain on SIGINT or SIGTERM.
 */
#include "app/app.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include "core/fetcher.h"
#include "core/jobs.h"
#include "http/http.h"
#include "util/log.h"

/* Every waiting client holds a descriptor: take all the system allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void vg_serve_block_signals(sigset_t *signals)
{
    sigemptyset(signals);
    sigaddset(signals, SIGINT);
    sigaddset(signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, signals, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int vg_serve(vg_app *app)
{
    raise_fd_limit();
    sigset_t signals;
    vg_serve_block_signals(&signals);
    vg_http_server *srv = vg_http_server_start(app);
    if (srv == NULL)
        return 1;

    int sig = 0;
    sigwait(&signals, &sig);
    vg_log_info("received %s: draining", sig == SIGINT ? "SIGINT"
                                                       : "SIGTERM");
    vg_http_server_close(srv); /* new connections are refused */
    /* Running jobs get a grace period; waiting clients then get their
     * answer (the video, or a refund notice) before the daemon stops. */
    vg_jobs_stop(app->jobs, app->config.shutdown_grace_s);
    vg_fetcher_drain(app->fetcher);
    vg_http_server_stop(srv);
    vg_log_info("stopped");
    return 0;
}
