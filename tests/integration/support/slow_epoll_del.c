/*
 * slow_epoll_del.c - a fault-injection shim for the integration tests
 * (LD_PRELOAD): every epoll_ctl(EPOLL_CTL_DEL) first sleeps 2 ms.
 *
 * It widens the window of races between threads that take descriptors
 * out of an epoll set, such as the one libmicrohttpd's MHD_quiesce_daemon
 * loses to its own epoll workers (test_shutdown's flood test).
 */
#include <dlfcn.h>
#include <sys/epoll.h>
#include <time.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    static int (*real)(int, int, int, struct epoll_event *);
    if (real == NULL)
        real = (int (*)(int, int, int, struct epoll_event *))dlsym(
            RTLD_NEXT, "epoll_ctl");
    if (op == EPOLL_CTL_DEL) {
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    return real(epfd, op, fd, event);
}
