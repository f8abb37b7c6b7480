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
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "providers/provider.h"

typedef struct replay_provider {
    vg_provider base;
    char *file;
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

static int replay_run(vg_provider *provider, const vg_job_spec *spec,
                      const char *out_path, const vg_job_hooks *hooks,
                      vg_provider_result *result, vg_error *err)
{
    replay_provider *p = (replay_provider *)provider;
    (void)spec;
    if (hooks != NULL && hooks->cancel != NULL && atomic_load(hooks->cancel))
        return vg_error_set(err, 409, "cancelled", NULL,
                            "the job was cancelled");
    if (copy_file(p->file, out_path, err) != 0)
        return -1;
    if (result != NULL) {
        result->prompt_tokens = 0;
        result->completion_tokens = 0;
    }
    return 0;
}

static void replay_destroy(vg_provider *provider)
{
    replay_provider *p = (replay_provider *)provider;
    free(p->file);
    free(p);
}

static const vg_provider_ops replay_ops = {
    .name = "replay",
    .run = replay_run,
    .destroy = replay_destroy,
};

vg_provider *vg_provider_replay_new(const char *file, vg_error *err)
{
    unsigned char head[12];
    int fd = file != NULL && *file ? open(file, O_RDONLY | O_CLOEXEC) : -1;
    ssize_t n = fd >= 0 ? read(fd, head, sizeof(head)) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof(head) || memcmp(head + 4, "ftyp", 4) != 0) {
        vg_error_set(err, 0, "config_error", "providers.replay.file",
                     "providers.replay.file must name an MP4 file (%s)",
                     file != NULL && *file ? file : "not set");
        return NULL;
    }
    replay_provider *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->file = strdup(file)) == NULL) {
        free(p);
        vg_error_set(err, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    p->base.ops = &replay_ops;
    return &p->base;
}
