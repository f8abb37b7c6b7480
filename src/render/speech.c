/*
 * speech.c - the prompt read aloud by espeak-ng (see speech.h).
 *
 * The parent side cleans the text, picks the voice from the script,
 * forks a child that runs espeak-ng and reads its 16-bit samples back
 * through a pipe, then resamples them (libswresample), trims the silence
 * around them, evens out their level, normalizes the peak and fades the
 * ends.
 *
 * Why a child process: espeak-ng 1.51 keeps synthesis state in globals
 * and function statics (the pitch flutter index, the gain control, the
 * glottal cycle count) that no API call resets, so the same text spoken
 * twice in one process gives different samples, even a different length.
 * The renderer promises byte-identical clips for the same request and
 * seed, so every utterance starts from a fresh process: initialize, speak,
 * exit. It costs about 15 ms. It also keeps espeak-ng's thread-unsafe
 * globals, its setlocale() call and its stderr chatter out of the server.
 */
#include "render/speech.h"
#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <espeak-ng/espeak_ng.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#include "util/clock.h"

/* Text past this many bytes can never be spoken in the time a clip has
 * (2000 characters take minutes even at the fastest rate). */
#define MAX_TEXT_BYTES 8192
/* Bounds the child's buffer and ours: 2 minutes at 22050 Hz is 5 MB. */
#define MAX_SECONDS 120.0
/* espeak-ng's normal rate, and the fastest that stays easy to follow. */
#define NORMAL_RATE 175
#define MAX_RATE 350
/* Syntheses per utterance while looking for a rate that fits. */
#define MAX_PASSES 4
/* A child normally answers within tens of milliseconds. One that takes
 * this long is stuck, most likely on a lock another thread held when
 * fork() copied it (glibc makes malloc and stdio safe across fork, but
 * the sanitizers' allocator in GCC 12 is not), and is killed and tried
 * again. */
#define CHILD_TIMEOUT_MS 10000
#define CHILD_ATTEMPTS 2
#define POLL_MS 20
/* The speech's dynamics: see compress(). */
#define COMPRESS_THRESHOLD 0.1
#define COMPRESS_RATIO 4.0
#define COMPRESS_RELEASE 0.05   /* seconds */
#define REPLY_MAGIC 0x53706b31u /* "Spk1" */

enum voice_id {
    V_EN,
    V_CMN,
    V_JA,
    V_KO,
    V_AR,
    V_HE,
    V_RU,
    V_EL,
    V_HI,
    V_BN,
    V_PA,
    V_GU,
    V_OR,
    V_TA,
    V_TE,
    V_KN,
    V_ML,
    V_SI,
    V_TH,
    V_MY,
    V_KA,
    V_HY,
    V_AM,
    N_VOICES,
    /* Not a voice: Han characters, spoken by cmn unless kana say the text
     * is Japanese. */
    HAN = N_VOICES,
    N_SCRIPTS
};

typedef struct voice_info {
    const char *name; /* for espeak_ng_SetVoiceByName() */
    const char *file; /* the voice's file under the data directory */
} voice_info;

static const voice_info voices[N_VOICES] = {
    [V_EN] = {"en", "lang/gmw/en"}, [V_CMN] = {"cmn", "lang/sit/cmn"},
    [V_JA] = {"ja", "lang/jpx/ja"}, [V_KO] = {"ko", "lang/ko"},
    [V_AR] = {"ar", "lang/sem/ar"}, [V_HE] = {"he", "lang/sem/he"},
    [V_RU] = {"ru", "lang/zle/ru"}, [V_EL] = {"el", "lang/grk/el"},
    [V_HI] = {"hi", "lang/inc/hi"}, [V_BN] = {"bn", "lang/inc/bn"},
    [V_PA] = {"pa", "lang/inc/pa"}, [V_GU] = {"gu", "lang/inc/gu"},
    [V_OR] = {"or", "lang/inc/or"}, [V_TA] = {"ta", "lang/dra/ta"},
    [V_TE] = {"te", "lang/dra/te"}, [V_KN] = {"kn", "lang/dra/kn"},
    [V_ML] = {"ml", "lang/dra/ml"}, [V_SI] = {"si", "lang/inc/si"},
    [V_TH] = {"th", "lang/tai/th"}, [V_MY] = {"my", "lang/sit/my"},
    [V_KA] = {"ka", "lang/ccs/ka"}, [V_HY] = {"hy", "lang/ine/hy"},
    [V_AM] = {"am", "lang/sem/am"},
};

/* Letters of each script, and who speaks them. Sorted by first. */
typedef struct script_range {
    uint32_t first, last;
    int script;
} script_range;

static const script_range scripts[] = {
    {0x0041, 0x005a, V_EN}, {0x0061, 0x007a, V_EN}, {0x00c0, 0x024f, V_EN},
    {0x0370, 0x03ff, V_EL}, {0x0400, 0x052f, V_RU}, {0x0530, 0x058f, V_HY},
    {0x0590, 0x05ff, V_HE}, {0x0600, 0x06ff, V_AR}, {0x0750, 0x077f, V_AR},
    {0x08a0, 0x08ff, V_AR}, {0x0900, 0x097f, V_HI}, {0x0980, 0x09ff, V_BN},
    {0x0a00, 0x0a7f, V_PA}, {0x0a80, 0x0aff, V_GU}, {0x0b00, 0x0b7f, V_OR},
    {0x0b80, 0x0bff, V_TA}, {0x0c00, 0x0c7f, V_TE}, {0x0c80, 0x0cff, V_KN},
    {0x0d00, 0x0d7f, V_ML}, {0x0d80, 0x0dff, V_SI}, {0x0e00, 0x0e7f, V_TH},
    {0x1000, 0x109f, V_MY}, {0x10a0, 0x10ff, V_KA}, {0x1100, 0x11ff, V_KO},
    {0x1200, 0x139f, V_AM}, {0x1e00, 0x1eff, V_EN}, {0x1f00, 0x1fff, V_EL},
    {0x3040, 0x30ff, V_JA}, {0x3130, 0x318f, V_KO}, {0x31f0, 0x31ff, V_JA},
    {0x3400, 0x4dbf, HAN},  {0x4e00, 0x9fff, HAN},  {0xac00, 0xd7af, V_KO},
    {0xf900, 0xfaff, HAN},  {0xfb1d, 0xfb4f, V_HE}, {0xfb50, 0xfdff, V_AR},
    {0xfe70, 0xfeff, V_AR}, {0xff66, 0xff9f, V_JA}, {0x20000, 0x2ffff, HAN},
};

/* What the child is asked to do. It gets a copy through fork(). */
typedef struct synth_job {
    const char *text; /* cleaned UTF-8, NUL-terminated */
    size_t text_bytes;
    int text_chars; /* code points: espeak-ng counts positions in these */
    const char *voice;
    double max_seconds;
} synth_job;

/* The child's answer, followed by n 16-bit samples. */
typedef struct child_reply {
    uint32_t magic;
    int32_t failed;      /* 0, or 1 with message set */
    int32_t sample_rate; /* espeak-ng's: 22050 */
    int32_t words_per_minute;
    int32_t truncated;
    int32_t reserved;
    int64_t n;
    char message[160];
} child_reply;

/* The child's capture of one synthesis pass. */
typedef struct capture {
    int16_t *samples;
    int64_t n, limit;
    bool hit_limit;
    int64_t last_word_sample; /* start of the last word begun in time */
    int last_word_char;       /* its position in the text, from 1 */
} capture;

static pthread_once_t data_dir_once = PTHREAD_ONCE_INIT;
static char data_dir[512];
static bool voice_available[N_VOICES];

/* ---- text -------------------------------------------------------------- */

/* Decodes one code point; malformed bytes come out as U+FFFD, one byte at
 * a time, so any input makes progress. */
static const char *next_code_point(const char *s, const char *end,
                                   uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];
    int len = c < 0x80                 ? 1
              : c >= 0xc2 && c <= 0xdf ? 2
              : c >= 0xe0 && c <= 0xef ? 3
              : c >= 0xf0 && c <= 0xf4 ? 4
                                       : 0;
    if (len == 0 || end - s < len) {
        *cp = 0xfffd;
        return s + 1;
    }
    uint32_t v = len == 1 ? c : c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return s + 1;
        }
        v = v << 6 | (p[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        v = 0xfffd;
    *cp = v;
    return s + len;
}

static int put_code_point(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The script a letter belongs to, or -1 for anything else. */
static int script_of(uint32_t cp)
{
    size_t lo = 0, hi = sizeof(scripts) / sizeof(scripts[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < scripts[mid].first)
            hi = mid;
        else if (cp > scripts[mid].last)
            lo = mid + 1;
        else
            return scripts[mid].script;
    }
    return -1;
}

static bool is_digit(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

/* Punctuation that shapes the reading (pauses, intonation) or reads as a
 * word. Other symbols (#, *, @, emoji...) would be read out by name. */
static bool is_kept_punctuation(uint32_t cp)
{
    if (cp < 0x80)
        return strchr(".,!?;:'\"-()%&$", (int)cp) != NULL && cp != 0;
    return (cp >= 0x2010 && cp <= 0x201f) || cp == 0x2026 || cp == 0x3001 ||
           cp == 0x3002 || cp == 0xff01 || cp == 0xff0c || cp == 0xff1a ||
           cp == 0xff1b || cp == 0xff1f;
}

/* Combining accents and the zero-width (non-)joiners that Indic and
 * Persian spelling needs: part of the letter before them, if any. (A
 * joiner between emoji, which are dropped, goes with them.) */
static bool is_joining_mark(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036f) || cp == 0x200c || cp == 0x200d;
}

static void find_data_dir(void)
{
    const char *path = NULL;
    espeak_ng_InitializePath(NULL);
    espeak_Info(&path);
    snprintf(data_dir, sizeof(data_dir), "%s", path != NULL ? path : "");
    for (int v = 0; v < N_VOICES; v++) {
        char file[sizeof(data_dir) + 64];
        char dict[sizeof(data_dir) + 64];
        snprintf(file, sizeof(file), "%s/%s", data_dir, voices[v].file);
        snprintf(dict, sizeof(dict), "%s/%s_dict", data_dir, voices[v].name);
        voice_available[v] =
            access(file, R_OK) == 0 && access(dict, R_OK) == 0;
    }
}

/* The voice for the script with the most letters. Kana make Han
 * characters Japanese; a script without an installed voice gives way to
 * English. */
static int choose_voice(const char *text)
{
    int count[N_SCRIPTS] = {0};
    const char *end = text + strlen(text);
    for (const char *s = text; s < end;) {
        uint32_t cp;
        s = next_code_point(s, end, &cp);
        int script = script_of(cp);
        if (script >= 0)
            count[script]++;
    }
    if (count[V_JA] > 0) {
        count[V_JA] += count[HAN];
        count[HAN] = 0;
    }
    count[V_CMN] += count[HAN];
    int best = V_EN;
    for (int v = 0; v < N_VOICES; v++)
        if (count[v] > count[best])
            best = v;
    pthread_once(&data_dir_once, find_data_dir);
    return voice_available[best] ? best : V_EN;
}

/* What the voice will read: its own script and Latin (every voice reads
 * Latin words, switching to English where it must), digits and the
 * punctuation that shapes speech; the rest becomes spaces. Han characters
 * are dropped for Japanese: espeak-ng's ja reads kana only, and says
 * "Chinese letter" for each kanji. Returns the number of code points, or
 * 0 when nothing in it can be said. */
static int clean_text(const char *text, int voice, char *out, size_t cap,
                      size_t *out_bytes)
{
    const char *end = text + strlen(text);
    size_t len = 0;
    int chars = 0;
    bool words = false, space = true, after_letter = false;
    for (const char *s = text; s < end;) {
        uint32_t cp;
        s = next_code_point(s, end, &cp);
        int script = script_of(cp);
        if (script == HAN)
            script = voice == V_JA ? -1 : V_CMN;
        bool letter = script >= 0 && (script == voice || script == V_EN);
        bool keep = letter || is_digit(cp) || is_kept_punctuation(cp) ||
                    (is_joining_mark(cp) && after_letter);
        if (!keep) {
            if (space)
                continue;
            cp = ' ';
        }
        if (len + 5 > cap)
            break; /* leave room for the terminator */
        len += (size_t)put_code_point(cp, out + len);
        chars++;
        space = cp == ' ';
        after_letter = letter || (after_letter && is_joining_mark(cp));
        words = words || letter || is_digit(cp);
    }
    while (len > 0 && out[len - 1] == ' ') {
        len--;
        chars--;
    }
    out[len] = '\0';
    *out_bytes = len;
    return words ? chars : 0;
}

const char *vg_speech_voice_for(const char *text)
{
    if (text == NULL)
        return NULL;
    int voice = choose_voice(text);
    char *clean = malloc(MAX_TEXT_BYTES);
    if (clean == NULL)
        return NULL;
    size_t bytes;
    int chars = clean_text(text, voice, clean, MAX_TEXT_BYTES, &bytes);
    free(clean);
    return chars > 0 ? voices[voice].name : NULL;
}

/* ---- the child ---------------------------------------------------------- */

static int capture_audio(short *wav, int count, espeak_EVENT *events)
{
    capture *c = events != NULL ? events->user_data : NULL;
    if (c == NULL)
        return 1;
    for (espeak_EVENT *e = events; e->type != espeakEVENT_LIST_TERMINATED;
         e++) {
        if (e->type == espeakEVENT_WORD && e->sample < c->limit) {
            c->last_word_sample = e->sample;
            c->last_word_char = e->text_position;
        }
    }
    if (wav == NULL || count <= 0)
        return 0;
    int64_t room = c->limit - c->n;
    if (count > room) {
        memcpy(c->samples + c->n, wav, (size_t)room * sizeof(int16_t));
        c->n = c->limit;
        c->hit_limit = true;
        return 1; /* enough: stop synthesizing */
    }
    memcpy(c->samples + c->n, wav, (size_t)count * sizeof(int16_t));
    c->n += count;
    return 0;
}

static void reply_failure(int fd, child_reply *reply, espeak_ng_STATUS st,
                          const char *what)
{
    char detail[120] = "";
    if (st != ENS_OK)
        espeak_ng_GetStatusCodeMessage(st, detail, sizeof(detail));
    reply->failed = 1;
    snprintf(reply->message, sizeof(reply->message), "%s%s%s", what,
             detail[0] ? ": " : "", detail);
    (void)vg_write_all(fd, reply, sizeof(*reply));
    _exit(1);
}

/* Cuts the process loose from the server it was forked from: signals
 * back to their defaults (the server ignores SIGPIPE and blocks SIGTERM),
 * death with the parent, no inherited descriptors but the pipe, which
 * becomes fd 3, and espeak-ng's messages away from the server's log. */
static int detach_child(int fd, pid_t parent)
{
    static const int defaults[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        signal(defaults[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    if (fd != 3) {
        if (dup2(fd, 3) < 0)
            _exit(1);
        fd = 3;
    }
    close_range(4, ~0u, 0);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 3)
            close(null);
    }
    return fd;
}

/* One pass at `rate` into c (reset first). */
static espeak_ng_STATUS speak_once(const synth_job *job, int rate, capture *c)
{
    c->n = 0;
    c->hit_limit = false;
    c->last_word_sample = 0;
    c->last_word_char = 0;
    espeak_ng_STATUS st = espeak_ng_SetParameter(espeakRATE, rate, 0);
    if (st != ENS_OK)
        return st;
    return espeak_ng_Synthesize(job->text, job->text_bytes + 1, 0,
                                POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, c);
}

/* The next rate to try after a pass that ran out of time: what the text
 * read so far says the whole needs, with a margin, always faster. */
static int next_rate(const synth_job *job, int rate, const capture *c)
{
    double progress = c->last_word_char > 1
                          ? (double)(c->last_word_char - 1) / job->text_chars
                          : 0.5;
    if (progress <= 0.0 || progress > 1.0)
        progress = 0.5;
    double wanted = rate / progress * 1.08;
    double at_least = rate * 1.1;
    double next = wanted > at_least ? wanted : at_least;
    return next > MAX_RATE ? MAX_RATE : (int)ceil(next);
}

static void run_child(int fd, const synth_job *job, pid_t parent)
    __attribute__((noreturn));
static void run_child(int fd, const synth_job *job, pid_t parent)
{
    fd = detach_child(fd, parent);
    child_reply reply = {.magic = REPLY_MAGIC};

    espeak_ng_InitializePath(NULL);
    espeak_ng_ERROR_CONTEXT context = NULL;
    espeak_ng_STATUS st = espeak_ng_Initialize(&context);
    if (st != ENS_OK)
        reply_failure(fd, &reply, st, "cannot initialize espeak-ng");
    st = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL);
    if (st != ENS_OK)
        reply_failure(fd, &reply, st, "cannot set up espeak-ng's output");
    espeak_SetSynthCallback(capture_audio);
    st = espeak_ng_SetVoiceByName(job->voice);
    if (st != ENS_OK)
        reply_failure(fd, &reply, st, "cannot load the voice");

    int sample_rate = espeak_ng_GetSampleRate();
    capture c = {.limit = (int64_t)(job->max_seconds * sample_rate)};
    c.samples = malloc((size_t)(c.limit > 0 ? c.limit : 1) * sizeof(int16_t));
    if (c.samples == NULL)
        reply_failure(fd, &reply, ENS_OK, "out of memory");

    int rate = NORMAL_RATE;
    for (int pass = 0;; pass++) {
        st = speak_once(job, rate, &c);
        /* Stopping at the limit is how capture_audio() ends a pass. */
        if (st != ENS_OK && !(st == ENS_SPEECH_STOPPED && c.hit_limit))
            reply_failure(fd, &reply, st, "synthesis failed");
        if (!c.hit_limit || rate >= MAX_RATE || pass + 1 >= MAX_PASSES)
            break;
        rate = next_rate(job, rate, &c);
    }
    if (c.hit_limit) {
        /* Stop where the last word that began in time begins, unless that
         * throws away most of the speech. */
        if (c.last_word_sample >= c.limit / 2)
            c.n = c.last_word_sample;
        reply.truncated = 1;
    }
    reply.sample_rate = sample_rate;
    reply.words_per_minute = rate;
    reply.n = c.n;
    if (vg_write_all(fd, &reply, sizeof(reply)) != 0 ||
        vg_write_all(fd, c.samples, (size_t)c.n * sizeof(int16_t)) != 0)
        _exit(1);
    _exit(0);
}

/* ---- the parent --------------------------------------------------------- */

static bool is_cancelled(atomic_int *cancel)
{
    return cancel != NULL && atomic_load(cancel) != 0;
}

typedef enum read_result {
    READ_OK,
    READ_EOF,
    READ_CANCELLED,
    READ_TIMEOUT,
    READ_ERROR
} read_result;

/* Reads exactly len bytes, watching the cancel flag and the deadline. */
static read_result read_exactly(int fd, void *data, size_t len,
                                atomic_int *cancel, int64_t deadline)
{
    char *p = data;
    while (len > 0) {
        if (is_cancelled(cancel))
            return READ_CANCELLED;
        int64_t left = deadline - vg_monotonic_ms();
        if (left <= 0)
            return READ_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, left < POLL_MS ? (int)left : POLL_MS);
        if (ready < 0 && errno != EINTR)
            return READ_ERROR;
        if (ready <= 0)
            continue;
        ssize_t got = read(fd, p, len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return READ_ERROR;
        if (got == 0)
            return READ_EOF;
        p += got;
        len -= (size_t)got;
    }
    return READ_OK;
}

static void reap(pid_t pid, bool kill_it, int *status)
{
    if (kill_it)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (status != NULL)
        *status = st;
}

typedef enum attempt_result {
    ATTEMPT_OK,
    ATTEMPT_FAILED,   /* err is set */
    ATTEMPT_RETRY,    /* the child hung or died: try once more */
    ATTEMPT_CANCELLED /* err is set */
} attempt_result;

/* Runs one child and reads its reply and samples into *pcm. */
static attempt_result run_attempt(const synth_job *job, atomic_int *cancel,
                                  child_reply *reply, int16_t **pcm,
                                  vg_error *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot start speech synthesis: pipe: %s",
                     strerror(errno));
        return ATTEMPT_FAILED;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        run_child(fds[1], job, parent);
    close(fds[1]);
    if (pid < 0) {
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot start speech synthesis: fork: %s",
                     strerror(errno));
        close(fds[0]);
        return ATTEMPT_FAILED;
    }

    int64_t deadline = vg_monotonic_ms() + CHILD_TIMEOUT_MS;
    read_result r =
        read_exactly(fds[0], reply, sizeof(*reply), cancel, deadline);
    /* espeak-ng speaks at 22050 Hz: more than 48 kHz's worth is garbage. */
    int64_t max_n = (int64_t)(job->max_seconds * 48000) + 1;
    if (r == READ_OK &&
        (reply->magic != REPLY_MAGIC || reply->n < 0 || reply->n > max_n))
        r = READ_ERROR;
    if (r == READ_OK && !reply->failed) {
        *pcm = malloc((size_t)(reply->n > 0 ? reply->n : 1) * sizeof(int16_t));
        if (*pcm == NULL) {
            close(fds[0]);
            reap(pid, true, NULL);
            vg_error_set(err, 500, "render_failed", NULL, "out of memory");
            return ATTEMPT_FAILED;
        }
        r = read_exactly(fds[0], *pcm, (size_t)reply->n * sizeof(int16_t),
                         cancel, deadline);
    }
    close(fds[0]);
    int status;
    reap(pid, r != READ_OK, &status);

    if (r == READ_CANCELLED) {
        vg_error_set(err, 500, "cancelled", NULL, "speech cancelled");
        return ATTEMPT_CANCELLED;
    }
    if (r == READ_OK && reply->failed) {
        reply->message[sizeof(reply->message) - 1] = '\0';
        vg_error_set(err, 500, "render_failed", NULL,
                     "speech synthesis failed: %s", reply->message);
        return ATTEMPT_FAILED;
    }
    if (r == READ_OK)
        return ATTEMPT_OK;
    if (r == READ_TIMEOUT)
        vg_error_set(err, 500, "render_failed", NULL,
                     "speech synthesis took longer than %d s",
                     CHILD_TIMEOUT_MS / 1000);
    else if (WIFSIGNALED(status))
        vg_error_set(err, 500, "render_failed", NULL,
                     "speech synthesis died of signal %d", WTERMSIG(status));
    else
        vg_error_set(err, 500, "render_failed", NULL,
                     "speech synthesis gave no answer (exit status %d)",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return r == READ_TIMEOUT || WIFSIGNALED(status) ? ATTEMPT_RETRY
                                                    : ATTEMPT_FAILED;
}

/* espeak-ng's 16-bit samples at its rate, to floats at ours. */
static float *resample(const int16_t *pcm, int64_t n, int in_rate,
                       int out_rate, int64_t *out_n, vg_error *err)
{
    SwrContext *swr = NULL;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int ret = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, out_rate,
                                  &mono, AV_SAMPLE_FMT_S16, in_rate, 0, NULL);
    if (ret >= 0)
        ret = swr_init(swr);
    if (ret < 0) {
        swr_free(&swr);
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot set up the speech resampler: %s",
                     av_err2str(ret));
        return NULL;
    }
    int64_t cap = av_rescale_rnd(n, out_rate, in_rate, AV_ROUND_UP) + 1024;
    float *out = malloc((size_t)cap * sizeof(float));
    if (out == NULL) {
        swr_free(&swr);
        vg_error_set(err, 500, "render_failed", NULL, "out of memory");
        return NULL;
    }
    uint8_t *dst[1] = {(uint8_t *)out};
    const uint8_t *src[1] = {(const uint8_t *)pcm};
    int got = swr_convert(swr, dst, (int)cap, src, (int)n);
    if (got >= 0) {
        /* Flush the filter's tail. */
        dst[0] = (uint8_t *)(out + got);
        int tail = swr_convert(swr, dst, (int)(cap - got), NULL, 0);
        got = tail < 0 ? tail : got + tail;
    }
    swr_free(&swr);
    if (got < 0) {
        free(out);
        vg_error_set(err, 500, "render_failed", NULL,
                     "cannot resample the speech: %s", av_err2str(got));
        return NULL;
    }
    *out_n = got;
    return out;
}

/* Raised-cosine fade over the first (or last) `len` samples. */
static void fade(float *s, int64_t n, int64_t len, bool out)
{
    if (len > n)
        len = n;
    for (int64_t i = 0; i < len; i++) {
        double x = (double)i / (double)len; /* 0 at the silent end */
        float gain = (float)(0.5 - 0.5 * cos(M_PI * x));
        s[out ? n - 1 - i : i] *= gain;
    }
}

/* Evens out the level: espeak-ng's glottal pulses make peaks some 18 dB
 * above the speech's average, so normalizing the peak alone leaves it
 * too quiet against music. Above COMPRESS_THRESHOLD (of a peak of 1) the
 * level rises only 1/COMPRESS_RATIO as fast. The envelope is the larger
 * of a forward and a backward peak follower, so the gain comes down
 * smoothly before a loud syllable as well as after it, and never lets a
 * peak through. */
static void compress(float *s, int64_t n, int rate)
{
    float *env = malloc((size_t)n * sizeof(float));
    if (env == NULL)
        return; /* louder peaks, quieter speech: still correct */
    double release = exp(-1.0 / (COMPRESS_RELEASE * rate));
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(fabsf(s[i]), e * release);
        env[i] = (float)e;
    }
    e = 0;
    for (int64_t i = n - 1; i >= 0; i--) {
        e = fmax(fabsf(s[i]), e * release);
        if (env[i] > COMPRESS_THRESHOLD || e > COMPRESS_THRESHOLD) {
            double level = fmax(env[i], e);
            s[i] *= (float)pow(COMPRESS_THRESHOLD / level,
                               1 - 1.0 / COMPRESS_RATIO);
        }
    }
    free(env);
}

static void normalize(float *s, int64_t n)
{
    float peak = 0;
    for (int64_t i = 0; i < n; i++)
        peak = fmaxf(peak, fabsf(s[i]));
    if (peak > 0)
        for (int64_t i = 0; i < n; i++)
            s[i] /= peak;
}

/* Trims the silence espeak-ng leaves around the speech (it would delay
 * the start and make the speech look longer than it is), evens out its
 * level, brings the peak to 1 and fades the ends so nothing clicks. A
 * truncated tail is kept: it ends at the cut, and gets a longer fade. */
static void shape(vg_speech *sp, int rate)
{
    float peak = 0;
    for (int64_t i = 0; i < sp->n; i++)
        peak = fmaxf(peak, fabsf(sp->samples[i]));
    if (peak < 1e-4f) {
        sp->n = 0;
        return;
    }
    float quiet = peak * 0.02f;
    int64_t first = 0, last = sp->n - 1;
    while (first < sp->n && fabsf(sp->samples[first]) < quiet)
        first++;
    while (last > first && fabsf(sp->samples[last]) < quiet)
        last--;
    first -= rate / 100; /* keep 10 ms of lead-in */
    if (first < 0)
        first = 0;
    int64_t end = sp->truncated ? sp->n : last + 1 + rate / 25;
    if (end > sp->n)
        end = sp->n;
    sp->n = end - first;
    memmove(sp->samples, sp->samples + first, (size_t)sp->n * sizeof(float));
    normalize(sp->samples, sp->n);
    compress(sp->samples, sp->n, rate);
    normalize(sp->samples, sp->n);
    fade(sp->samples, sp->n, rate / 200, false);
    fade(sp->samples, sp->n, sp->truncated ? rate * 3 / 50 : rate / 50, true);
}

int vg_speech_synthesize(const char *text, double max_seconds, int sample_rate,
                         atomic_int *cancel, vg_speech *out, vg_error *err)
{
    memset(out, 0, sizeof(*out));
    if (sample_rate < 8000 || sample_rate > 192000)
        return vg_error_set(err, 500, "render_failed", NULL,
                            "unsupported speech sample rate %d", sample_rate);
    if (max_seconds > MAX_SECONDS)
        max_seconds = MAX_SECONDS;
    if (text == NULL || max_seconds < 0.1)
        return 0;
    if (is_cancelled(cancel))
        return vg_error_set(err, 500, "cancelled", NULL, "speech cancelled");

    int voice = choose_voice(text);
    char *clean = malloc(MAX_TEXT_BYTES);
    if (clean == NULL)
        return vg_error_set(err, 500, "render_failed", NULL, "out of memory");
    synth_job job = {.text = clean,
                     .voice = voices[voice].name,
                     .max_seconds = max_seconds};
    job.text_chars =
        clean_text(text, voice, clean, MAX_TEXT_BYTES, &job.text_bytes);
    if (job.text_chars == 0) {
        free(clean);
        return 0;
    }

    child_reply reply;
    int16_t *pcm = NULL;
    attempt_result r = ATTEMPT_RETRY;
    for (int i = 0; i < CHILD_ATTEMPTS && r == ATTEMPT_RETRY; i++) {
        memset(&reply, 0, sizeof(reply));
        free(pcm);
        pcm = NULL;
        r = run_attempt(&job, cancel, &reply, &pcm, err);
    }
    free(clean);
    if (r != ATTEMPT_OK) {
        free(pcm);
        return -1;
    }

    int ret = 0;
    if (reply.n > 0) {
        out->samples = resample(pcm, reply.n, reply.sample_rate, sample_rate,
                                &out->n, err);
        if (out->samples == NULL)
            ret = -1;
    }
    free(pcm);
    if (ret == 0 && out->n > 0) {
        snprintf(out->voice, sizeof(out->voice), "%s", voices[voice].name);
        out->words_per_minute = reply.words_per_minute;
        out->truncated = reply.truncated != 0;
        shape(out, sample_rate);
    }
    if (ret == 0 && out->n == 0) {
        /* Nothing audible came out: as if there were nothing to say. */
        vg_speech_free(out);
    }
    return ret;
}

void vg_speech_free(vg_speech *speech)
{
    free(speech->samples);
    memset(speech, 0, sizeof(*speech));
}
