/*
 * store_creates.c - how many jobs a second the SQLite store can create, and
 * how long each create waits, with synchronous=FULL as the server runs it.
 * Job creation is the one write on the request path of every generation,
 * so this is the store's share of the server's ceiling; it is also what
 * the group commit in store_sqlite.c is for.
 *
 * Usage: store_creates [THREADS [SECONDS [DIR]]]
 *
 * THREADS (default twice the number of cores) create jobs for one
 * account, as fast as they can, for SECONDS (default 3). The database is
 * a fresh one in a new directory under DIR (default $TMPDIR or /tmp),
 * removed afterwards: put DIR on the disk the server's data will live
 * on, since the fsync is most of the cost.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/crypto.h"
#include "util/parse.h"

#define MAX_THREADS 256

typedef struct worker {
    vg_store *store;
    const char *account_id;
    int64_t deadline_ns;
    pthread_barrier_t *start;
    /* Latency of every create, in nanoseconds. */
    int64_t *latencies;
    size_t count, cap;
    int errors;
    char first_error[512];
} worker;

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int record(worker *w, int64_t ns)
{
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        int64_t *more = realloc(w->latencies, cap * sizeof(*more));
        if (more == NULL)
            return -1;
        w->latencies = more;
        w->cap = cap;
    }
    w->latencies[w->count++] = ns;
    return 0;
}

static void *create_jobs(void *arg)
{
    worker *w = arg;
    /* What jobs.c stores for a typical text-to-video request. */
    char request[] =
        "{\"model\":\"vidgate-local\",\"prompt\":\"a cat drinking "
        "milk in a cozy kitchen\",\"resolution\":\"720P\","
        "\"aspect_ratio\":\"16:9\",\"duration\":5,"
        "\"generate_audio\":true,\"fps\":24,\"seed\":42}";
    pthread_barrier_wait(w->start);
    while (monotonic_ns() < w->deadline_ns) {
        vg_job job;
        memset(&job, 0, sizeof(job));
        vg_uuid_v4(job.id);
        snprintf(job.account_id, sizeof(job.account_id), "%s", w->account_id);
        snprintf(job.key_id, sizeof(job.key_id), "bench-key");
        snprintf(job.model, sizeof(job.model), "vidgate-local");
        snprintf(job.provider, sizeof(job.provider), "local");
        job.request_json = request;
        job.price = 2500;
        job.seed = 42;
        job.width = 1280;
        job.height = 720;

        vg_error err;
        int64_t t0 = monotonic_ns();
        int rc = w->store->ops->create_job(w->store, &job, NULL, NULL, &err);
        int64_t t1 = monotonic_ns();
        if (rc != VG_STORE_OK) {
            if (w->errors++ == 0)
                snprintf(w->first_error, sizeof(w->first_error), "%s",
                         err.message);
            continue;
        }
        if (record(w, t1 - t0) != 0) {
            w->errors++;
            break;
        }
    }
    return NULL;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

static int parse_arg(const char *text, const char *name, int64_t lo,
                     int64_t hi, int64_t *out)
{
    if (vg_parse_int64(text, out) != 0 || *out < lo || *out > hi) {
        fprintf(stderr, "store_creates: %s must be an integer %lld..%lld\n",
                name, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static void remove_store(const char *dir, const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-keys"};
    char file[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
        unlink(file);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 4) {
        fprintf(stderr, "usage: store_creates [THREADS [SECONDS [DIR]]]\n");
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t threads = cores > 0 ? 2 * cores : 2, seconds = 3;
    if ((argc > 1 &&
         parse_arg(argv[1], "THREADS", 1, MAX_THREADS, &threads) < 0) ||
        (argc > 2 && parse_arg(argv[2], "SECONDS", 1, 3600, &seconds) < 0))
        return 2;
    const char *parent = argc > 3 ? argv[3] : getenv("TMPDIR");
    if (parent == NULL || parent[0] == '\0')
        parent = "/tmp";

    char dir[PATH_MAX], path[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/vg-store-creates.XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "store_creates: mkdtemp %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/vidgate.db", dir);

    vg_error err;
    vg_store *store = vg_store_open_sqlite(path, &err);
    if (store == NULL) {
        fprintf(stderr, "store_creates: %s\n", err.message);
        rmdir(dir);
        return 1;
    }
    /* Enough credits that no create is refused, however fast they go. */
    vg_account account;
    if (store->ops->create_account(store, "bench", INT64_MAX / 4, &account,
                                   &err) != VG_STORE_OK) {
        fprintf(stderr, "store_creates: %s\n", err.message);
        vg_store_close(store);
        remove_store(dir, path);
        return 1;
    }

    worker workers[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < threads; i++) {
        workers[i].store = store;
        workers[i].account_id = account.id;
        workers[i].start = &start;
        pthread_create(&ids[i], NULL, create_jobs, &workers[i]);
    }
    /* The deadline is set once everyone is ready, so thread start-up
     * does not eat into the measured time. */
    int64_t t0 = monotonic_ns();
    for (int i = 0; i < threads; i++)
        workers[i].deadline_ns = t0 + seconds * 1000000000;
    pthread_barrier_wait(&start);
    for (int i = 0; i < threads; i++)
        pthread_join(ids[i], NULL);
    double elapsed = (double)(monotonic_ns() - t0) / 1e9;
    pthread_barrier_destroy(&start);

    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        total += workers[i].count;
        errors += workers[i].errors;
        if (workers[i].errors > 0)
            fprintf(stderr, "store_creates: thread %d: %d errors, first: %s\n",
                    i, workers[i].errors, workers[i].first_error);
    }
    int64_t *all = malloc((total > 0 ? total : 1) * sizeof(*all));
    if (all == NULL) {
        fprintf(stderr, "store_creates: out of memory\n");
        return 1;
    }
    size_t n = 0;
    for (int i = 0; i < threads; i++) {
        if (workers[i].count > 0)
            memcpy(all + n, workers[i].latencies,
                   workers[i].count * sizeof(*all));
        n += workers[i].count;
        free(workers[i].latencies);
    }
    qsort(all, n, sizeof(*all), compare_int64);

    printf("threads %lld  creates %zu  in %.2f s  =  %.0f creates/s\n",
           (long long)threads, total, elapsed, (double)total / elapsed);
    printf("latency per create: p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
           percentile_ms(all, n, 0.50), percentile_ms(all, n, 0.99),
           n > 0 ? (double)all[n - 1] / 1e6 : 0.0);
    free(all);

    vg_store_close(store);
    remove_store(dir, path);
    return errors > 0 ? 1 : 0;
}
