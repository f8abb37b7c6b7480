/*
 * replay.c - the "replay" provider: every job gets a copy of one MP4 file
 * chosen by the operator, whatever its prompt.
 *
 * It exists for load tests and for developing clients against the job
 * API without spending render time or provider money: with the
 * scheduler's delay_ms it behaves like a slow upstream that holds no
 * thread while it "works". It is never a model, and only runs when the
 * configuration names it.
 */
#include "providers/providers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct replay_provider {
    vg_provider base;
    char *file;
    char tmp_dir[PATH_MAX];
} replay_provider;

static int copy_file(const char *from, const char *to, vg_error *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return vg_error_set(err, 500, "provider_failed", NULL,
                            "replay: cannot open %s: %s", from,
                            strerror(errno));
    struct stat st;
    int out = -1;
    int rc = -1;
    if (fstat(in, &st) != 0)
        goto done;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        goto done;
    off_t offset = 0;
    while (offset < st.st_size) {
        ssize_t n = sendfile(out, in, &offset, (size_t)(st.st_size - offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        vg_error_set(err, 500, "provider_failed", NULL,
                     "replay: cannot copy %s: %s", from, strerror(errno));
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

static int replay_start(vg_provider *provider, const vg_provider_job *job,
                        vg_error *err)
{
    replay_provider *p = (replay_provider *)provider;
    vg_error failure;
    vg_error_clear(&failure);
    if (job->cancel != NULL && atomic_load(job->cancel)) {
        vg_error_set(&failure, 409, "cancelled", NULL,
                     "the job was cancelled");
        return vg_provider_send_failed(provider, job->id, &failure, err);
    }
    char out[PATH_MAX + 64];
    snprintf(out, sizeof(out), "%s/%s.mp4", p->tmp_dir, job->id);
    if (copy_file(p->file, out, &failure) != 0) {
        unlink(out);
        return vg_provider_send_failed(provider, job->id, &failure, err);
    }
    if (vg_provider_send_done(provider, job->id, out, 0, 0, err) != 0) {
        unlink(out);
        return -1;
    }
    return 0;
}

static void replay_cancel(vg_provider *provider, const char *job_id,
                          bool remote)
{
    (void)provider, (void)job_id, (void)remote;
}

static bool replay_available(vg_provider *provider)
{
    (void)provider;
    return true;
}

static void replay_destroy(vg_provider *provider)
{
    replay_provider *p = (replay_provider *)provider;
    free(p->file);
    free(p);
}

static const vg_provider_ops replay_ops = {
    .start = replay_start,
    .cancel = replay_cancel,
    .available = replay_available,
    .destroy = replay_destroy,
};

vg_provider *vg_provider_replay_new(const vg_provider_config *config,
                                    const char *tmp_dir, vg_error *err)
{
    const char *file = config->file;
    unsigned char head[12];
    int fd = *file ? open(file, O_RDONLY | O_CLOEXEC) : -1;
    ssize_t n = fd >= 0 ? read(fd, head, sizeof(head)) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof(head) || memcmp(head + 4, "ftyp", 4) != 0) {
        vg_error_set(err, 0, "config_error", "providers.replay.file",
                     "providers.replay.file must name an MP4 file (%s)",
                     *file ? file : "not set");
        return NULL;
    }
    replay_provider *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->file = strdup(file)) == NULL) {
        free(p);
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    p->base.ops = &replay_ops;
    snprintf(p->base.name, sizeof(p->base.name), "replay");
    p->base.concurrency = config->concurrency > 0 ? config->concurrency : 1000;
    p->base.delay_ms = config->delay_ms;
    snprintf(p->tmp_dir, sizeof(p->tmp_dir), "%s", tmp_dir);
    return &p->base;
}
