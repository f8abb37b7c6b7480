/*
 * request.c - turns a JSON body (or a multipart form converted field by
 * field) into a validated vg_video_request, following the contract's
 * field table.
 *
 * Validation runs in two phases so clients get the most basic problem
 * first: the schema (422: missing field, wrong type, out of range, unknown
 * enum value), field by field in the table's order, and only then what the
 * chosen model can do (400, with the values it does allow). Reference
 * images are files on disk from the moment they are accepted, so a request
 * never holds megabytes of decoded image in memory, and every image path
 * goes through vg_request_add_image so multipart uploads, data: URLs and
 * fetched image URLs meet the same limits.
 *
 * Image URLs are the one part that needs the network. The server plans
 * them first (vg_request_plan_fetch: only what validation would reach,
 * after the checks that need no network), has them fetched elsewhere and
 * then validates with the files (vg_request_validate_fetched), which
 * never fetches; checks and errors come in the same order either way.
 */
#include "core/request_internal.h"
#include "util/dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fetcher.h"
#include "util/crypto.h"
#include "util/parse.h"

#define DEFAULT_FPS 24
#define MAX_SEED INT64_C(4294967295)
/* How many model names an "unsupported model" message lists at most. */
#define MAX_LISTED_MODELS 20

/* Slot i of a fetch task is files[i]. */
_Static_assert(VG_MAX_IMAGES <= VG_FETCH_TASK_MAX,
               "a fetch task holds every image of a request");

const vg_limits req_default_limits = {
    .prompt_max_chars = 2000,
    .max_image_bytes = 10 * 1024 * 1024,
    .max_images = 4,
};

/* ---- form fields ----------------------------------------------------- */

vg_field_type vg_request_field_type(const char *name)
{
    static const struct {
        const char *name;
        vg_field_type type;
    } fields[] = {
        {"prompt", VG_FIELD_STRING},
        {"model", VG_FIELD_STRING},
        {"resolution", VG_FIELD_STRING},
        {"aspect_ratio", VG_FIELD_STRING},
        {"service_tier", VG_FIELD_STRING},
        {"duration", VG_FIELD_INTEGER},
        {"fps", VG_FIELD_INTEGER},
        {"seed", VG_FIELD_INTEGER},
        {"generate_audio", VG_FIELD_BOOLEAN},
        {"camera_fixed", VG_FIELD_BOOLEAN},
        {"webhook_url", VG_FIELD_STRING},
        {"provider", VG_FIELD_STRING},
        {"number", VG_FIELD_INTEGER},
    };
    if (name == NULL)
        return VG_FIELD_UNKNOWN;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(name, fields[i].name) == 0)
            return fields[i].type;
    return VG_FIELD_UNKNOWN;
}

/*
 * Quotes client text for an error message. The message ends up in a JSON
 * response and in logs, so bytes outside printable ASCII are escaped (the
 * text may not even be UTF-8), and long values are cut: the client knows
 * what it sent, it only needs enough to recognise it.
 */
static void quote(const char *s, size_t len, char *out, size_t out_size)
{
    static const size_t max_shown = 40;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len && i < max_shown && o + 8 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, out_size - o, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (len > max_shown && o + 5 < out_size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

int vg_request_form_field(json_t *body, const char *name, const char *value,
                          vg_error *err)
{
    char shown[200];
    int64_t i;
    bool b;
    json_t *v;

    if (value == NULL)
        value = "";
    switch (vg_request_field_type(name)) {
    case VG_FIELD_UNKNOWN:
        return 0;
    case VG_FIELD_STRING:
        /* Stored unchecked: whether the text is valid UTF-8 is a
         * validation rule with its own message, reported in field order. */
        v = json_stringn_nocheck(value, strlen(value));
        break;
    case VG_FIELD_INTEGER:
        if (vg_parse_int64(value, &i) != 0) {
            quote(value, strlen(value), shown, sizeof(shown));
            return vg_error_set(err, 422, "validation_error", name,
                                "\"%s\" must be an integer, got %s", name,
                                shown);
        }
        v = json_integer(i);
        break;
    case VG_FIELD_BOOLEAN:
        if (vg_parse_bool(value, &b) != 0) {
            quote(value, strlen(value), shown, sizeof(shown));
            return vg_error_set(err, 422, "validation_error", name,
                                "\"%s\" must be true or false, got %s", name,
                                shown);
        }
        v = json_boolean(b);
        break;
    default:
        return 0;
    }
    json_object_set_new(body, name, v);
    return 0;
}

/* ---- schema checks (422) --------------------------------------------- */

static int missing(const char *field, vg_error *err)
{
    return vg_error_set(err, 422, "validation_error", field,
                        "\"%s\" is required", field);
}

/* Says what a wrong-typed value was, as the client would recognise it. */
static void describe(const json_t *v, char *out, size_t out_size)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        quote(json_string_value(v), json_string_length(v), out, out_size);
        return;
    case JSON_INTEGER:
        snprintf(out, out_size, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return;
    case JSON_REAL:
        /* The shortest text that reads back as the same number, so 0.1
         * shows as the client wrote it rather than as 0.10000000000000001. */
        snprintf(out, out_size, "%.15g", json_real_value(v));
        if (strtod(out, NULL) != json_real_value(v))
            snprintf(out, out_size, "%.17g", json_real_value(v));
        /* 5.0 must not read back as "5", which looks like a valid integer
         * and would make the message contradict itself. */
        if (strpbrk(out, ".eEn") == NULL && strlen(out) + 3 < out_size)
            strcat(out, ".0");
        return;
    case JSON_TRUE:
        snprintf(out, out_size, "true");
        return;
    case JSON_FALSE:
        snprintf(out, out_size, "false");
        return;
    case JSON_ARRAY:
        snprintf(out, out_size, "an array");
        return;
    case JSON_OBJECT:
        snprintf(out, out_size, "an object");
        return;
    default:
        snprintf(out, out_size, "null");
        return;
    }
}

static int wrong_type(const char *field, const char *expected, const json_t *v,
                      vg_error *err)
{
    char shown[200];
    describe(v, shown, sizeof(shown));
    return vg_error_set(err, 422, "validation_error", field,
                        "\"%s\" must be %s, got %s", field, expected, shown);
}

/* The value of a field, with JSON null meaning the same as absent. */
static json_t *field_value(json_t *body, const char *field)
{
    json_t *v = json_object_get(body, field);
    return json_is_null(v) ? NULL : v;
}

static int get_string(json_t *body, const char *field, const char **out,
                      vg_error *err)
{
    json_t *v = field_value(body, field);
    if (v == NULL)
        return missing(field, err);
    if (!json_is_string(v))
        return wrong_type(field, "a string", v, err);
    /* JSON allows "\u0000"; C strings do not, and a name compared up to the
     * first NUL would match something the client did not send. */
    if (strlen(json_string_value(v)) != json_string_length(v))
        return vg_error_set(err, 422, "validation_error", field,
                            "\"%s\" must not contain NUL characters", field);
    *out = json_string_value(v);
    return 0;
}

static int get_integer(json_t *body, const char *field, bool required,
                       int64_t lo, int64_t hi, int64_t *out, vg_error *err)
{
    json_t *v = field_value(body, field);
    if (v == NULL)
        return required ? missing(field, err) : 1;
    if (!json_is_integer(v))
        return wrong_type(field, "an integer", v, err);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return vg_error_set(err, 422, "validation_error", field,
                            "\"%s\" must be an integer between %" PRId64
                            " and %" PRId64 ", got %" JSON_INTEGER_FORMAT,
                            field, lo, hi, i);
    *out = i;
    return 0;
}

static int get_boolean(json_t *body, const char *field, bool *out,
                       vg_error *err)
{
    json_t *v = field_value(body, field);
    if (v == NULL)
        return missing(field, err);
    if (!json_is_boolean(v))
        return wrong_type(field, "true or false", v, err);
    *out = json_is_true(v);
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static int check_prompt(json_t *body, const vg_limits *limits, vg_arena *arena,
                        vg_video_request *out, vg_error *err)
{
    const char *s;
    json_t *v = field_value(body, "prompt");
    if (v == NULL)
        return missing("prompt", err);
    if (!json_is_string(v))
        return wrong_type("prompt", "a string", v, err);
    s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!vg_utf8_valid(s, len))
        return vg_error_set(err, 422, "validation_error", "prompt",
                            "\"prompt\" must be valid UTF-8 text without NUL "
                            "characters");
    /* Surrounding whitespace is not part of what the client describes; a
     * prompt of only whitespace describes nothing. */
    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len == 0)
        return vg_error_set(err, 422, "validation_error", "prompt",
                            "\"prompt\" must not be empty");
    size_t chars = vg_utf8_length(s, len);
    if (limits->prompt_max_chars > 0 &&
        chars > (size_t)limits->prompt_max_chars)
        return vg_error_set(err, 422, "validation_error", "prompt",
                            "\"prompt\" must be at most %d characters, got "
                            "%zu",
                            limits->prompt_max_chars, chars);
    out->prompt = vg_arena_strndup(arena, s, len);
    return 0;
}

/* Every field of the table but "files", in the table's order. */
static int check_fields(json_t *body, const vg_limits *limits, vg_arena *arena,
                        vg_video_request *out, vg_error *err)
{
    const char *s;
    char shown[200];
    int64_t i;
    int rc;

    if (check_prompt(body, limits, arena, out, err) != 0)
        return -1;

    if (get_string(body, "model", &s, err) != 0)
        return -1;
    if (*s == '\0')
        return vg_error_set(err, 422, "validation_error", "model",
                            "\"model\" must not be empty");
    /* Copied, like the prompt, so the request outlives the parsed body. */
    out->model_name = vg_arena_strdup(arena, s);

    if (get_string(body, "resolution", &s, err) != 0)
        return -1;
    if (vg_resolution_parse(s, &out->resolution) != 0) {
        quote(s, strlen(s), shown, sizeof(shown));
        return vg_error_set(err, 422, "validation_error", "resolution",
                            "\"resolution\" must be one of 480P, 720P, "
                            "1080P, got %s",
                            shown);
    }

    if (get_string(body, "aspect_ratio", &s, err) != 0)
        return -1;
    if (vg_aspect_parse(s, &out->aspect) != 0) {
        quote(s, strlen(s), shown, sizeof(shown));
        return vg_error_set(err, 422, "validation_error", "aspect_ratio",
                            "\"aspect_ratio\" must be one of 16:9, 9:16, "
                            "1:1, 4:3, 3:4, 21:9 (or landscape, portrait, "
                            "square), got %s",
                            shown);
    }

    if (get_integer(body, "duration", true, VG_MIN_DURATION, VG_MAX_DURATION,
                    &i, err) != 0)
        return -1;
    out->duration = (int)i;

    if (get_boolean(body, "generate_audio", &out->generate_audio, err) != 0 ||
        get_boolean(body, "camera_fixed", &out->camera_fixed, err) != 0)
        return -1;

    if (get_string(body, "service_tier", &s, err) != 0)
        return -1;
    if (strcmp(s, "default") == 0) {
        out->tier = VG_TIER_DEFAULT;
    } else if (strcmp(s, "flex") == 0) {
        out->tier = VG_TIER_FLEX;
    } else {
        quote(s, strlen(s), shown, sizeof(shown));
        return vg_error_set(err, 422, "validation_error", "service_tier",
                            "\"service_tier\" must be one of default, flex, "
                            "got %s",
                            shown);
    }

    rc = get_integer(body, "fps", false, 1, VG_MAX_FPS, &i, err);
    if (rc < 0)
        return -1;
    out->fps = rc == 0 ? (int)i : DEFAULT_FPS;

    rc = get_integer(body, "seed", false, -1, MAX_SEED, &i, err);
    if (rc < 0)
        return -1;
    out->seed = rc == 0 ? i : -1;

    /* OneInfer clients send how many videos they want; vidgate makes one
     * per request, and says so rather than silently making fewer. */
    rc = get_integer(body, "number", false, INT64_MIN, INT64_MAX, &i, err);
    if (rc < 0)
        return -1;
    if (rc == 0 && i != 1)
        return vg_error_set(err, 422, "validation_error", "number",
                            "\"number\" must be 1: one video per request "
                            "(send one request per video), got %" PRId64,
                            i);

    /* A preferred provider: only its shape here; whether it serves the
     * model is a model rule (400). */
    json_t *provider = field_value(body, "provider");
    if (provider != NULL) {
        if (get_string(body, "provider", &s, err) != 0)
            return -1;
        if (*s == '\0' || strlen(s) > 63)
            return vg_error_set(err, 422, "validation_error", "provider",
                                "\"provider\" must be a provider name of "
                                "1 to 63 characters");
        out->provider = vg_arena_strdup(arena, s);
    }

    /* Only its shape is checked here; where it may point is the
     * operator's policy, checked by the fetcher (vg_url_check_task_new). */
    json_t *hook = field_value(body, "webhook_url");
    if (hook != NULL) {
        if (!json_is_string(hook) || json_string_length(hook) == 0 ||
            json_string_length(hook) > VG_MAX_WEBHOOK_URL)
            return vg_error_set(err, 422, "validation_error", "webhook_url",
                                "\"webhook_url\" must be an http(s) URL "
                                "of at most %d bytes",
                                VG_MAX_WEBHOOK_URL);
        out->webhook_url = vg_arena_strdup(arena, json_string_value(hook));
    }
    return 0;
}

static int check_schema(json_t *body, const vg_limits *limits,
                        const char *tmp_dir, const url_source *source,
                        vg_arena *arena, vg_video_request *out, vg_error *err)
{
    if (check_fields(body, limits, arena, out, err) != 0)
        return -1;
    json_t *files = field_value(body, "files");
    if (files != NULL && req_add_json_files(files, out, limits, tmp_dir,
                                            source, arena, err) != 0)
        return -1;
    return 0;
}

/* ---- model checks (400) ---------------------------------------------- */

/* Adds an item to a comma-separated list in buf. */
static void append(char *buf, size_t size, const char *s)
{
    size_t used = strlen(buf);
    if (used + 1 < size)
        snprintf(buf + used, size - used, "%s%s", used ? ", " : "", s);
}

/* Lists the names (models and their aliases) whose model is or is not
 * available now, at most MAX_LISTED_MODELS, then "and N more". */
static void list_models(const vg_catalog *catalog, bool available, char *buf,
                        size_t size)
{
    size_t listed = 0, total = 0;
    buf[0] = '\0';
    size_t n = catalog->n_models + catalog->n_aliases;
    for (size_t k = 0; k < n; k++) {
        bool alias = k >= catalog->n_models;
        const vg_model *m =
            alias ? catalog->aliases[k - catalog->n_models].target
                  : &catalog->models[k];
        if (vg_catalog_model_available(catalog, m) != available)
            continue;
        total++;
        const char *name =
            alias ? catalog->aliases[k - catalog->n_models].name : m->name;
        /* Room is kept for " and N more". */
        if (listed < MAX_LISTED_MODELS &&
            strlen(buf) + strlen(name) + 2 + 16 < size) {
            append(buf, size, name);
            listed++;
        }
    }
    if (total > listed) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, " and %zu more", total - listed);
    }
    if (total == 0)
        snprintf(buf, size, "none");
}

static int unknown_model(const vg_catalog *catalog, const char *name,
                         vg_error *err)
{
    /* Both lists fit the error's message (512) with the name asked for. */
    char ready[220] = "none", idle[180] = "none";
    if (catalog != NULL) {
        list_models(catalog, true, ready, sizeof(ready));
        list_models(catalog, false, idle, sizeof(idle));
    }
    char shown[200];
    quote(name, strlen(name), shown, sizeof(shown));
    return vg_error_set(err, 400, "unsupported_model", "model",
                        "unknown model %s; available now: %s; known but "
                        "without a configured provider: %s",
                        shown, ready, idle);
}

static int unsupported(const vg_model *m, const char *field,
                       const char *allowed, vg_error *err)
{
    return vg_error_set(err, 400, "unsupported_parameter", field,
                        "model \"%s\" supports %s %s", m->name, field,
                        allowed);
}

/* The name to send reference images to instead of a t2v alias: the
 * model's i2v alias if it has one, else the model itself. */
static const char *i2v_sibling(const vg_catalog *catalog, const vg_model *m)
{
    for (size_t i = 0; i < catalog->n_aliases; i++)
        if (catalog->aliases[i].target == m &&
            catalog->aliases[i].modality == VG_MODALITY_I2V)
            return catalog->aliases[i].name;
    return m->name;
}

static int check_model(const vg_catalog *catalog, vg_video_request *out,
                       vg_error *err)
{
    vg_modality modality;
    const vg_model *m = vg_catalog_lookup(catalog, out->model_name, &modality);
    char allowed[300];
    char num[16];
    if (m == NULL)
        return unknown_model(catalog, out->model_name, err);
    out->model = m;
    if (out->provider != NULL) {
        bool serves = false;
        allowed[0] = '\0';
        for (size_t k = 0; k < m->n_routes; k++) {
            serves |= strcmp(m->routes[k].provider, out->provider) == 0;
            append(allowed, sizeof(allowed), m->routes[k].provider);
        }
        if (!serves) {
            char shown[100];
            quote(out->provider, strlen(out->provider), shown, sizeof(shown));
            return vg_error_set(err, 400, "unsupported_provider", "provider",
                                "provider %s does not serve the model "
                                "\"%s\"; its providers are: %s",
                                shown, out->model_name, allowed);
        }
    }

    if (!(m->resolutions & (1u << out->resolution))) {
        allowed[0] = '\0';
        for (int r = 0; r < VG_RES_COUNT; r++)
            if (m->resolutions & (1u << r))
                append(allowed, sizeof(allowed),
                       vg_resolution_name((vg_resolution)r));
        return unsupported(m, "resolution", allowed, err);
    }
    if (!(m->aspects & (1u << out->aspect))) {
        allowed[0] = '\0';
        for (int a = 0; a < VG_AR_COUNT; a++)
            if (m->aspects & (1u << a))
                append(allowed, sizeof(allowed), vg_aspect_name((vg_aspect)a));
        return unsupported(m, "aspect_ratio", allowed, err);
    }
    /* Some models allow fewer durations at one resolution (Veo makes
     * 1080p only at 8 s); the message then names the resolution, or the
     * client could not tell why a listed duration was refused. */
    uint32_t durations = vg_model_durations_at(m, out->resolution);
    bool narrowed = durations != m->durations;
    if (!(durations & (UINT32_C(1) << out->duration))) {
        allowed[0] = '\0';
        for (int s = VG_MIN_DURATION; s <= VG_MAX_DURATION; s++) {
            if (!(durations & (UINT32_C(1) << s)))
                continue;
            snprintf(num, sizeof(num), "%d", s);
            append(allowed, sizeof(allowed), num);
        }
        return vg_error_set(err, 400, "unsupported_parameter", "duration",
                            "model \"%s\" supports duration %s (seconds)%s%s",
                            m->name, allowed, narrowed ? " at " : "",
                            narrowed ? vg_resolution_name(out->resolution)
                                     : "");
    }
    if (out->generate_audio && !m->audio)
        return vg_error_set(err, 400, "unsupported_parameter",
                            "generate_audio",
                            "model \"%s\" cannot generate audio; set "
                            "\"generate_audio\" to false",
                            m->name);
    if (!(m->fps & (UINT64_C(1) << out->fps))) {
        allowed[0] = '\0';
        for (int f = 1; f <= VG_MAX_FPS; f++) {
            if (!(m->fps & (UINT64_C(1) << f)))
                continue;
            snprintf(num, sizeof(num), "%d", f);
            append(allowed, sizeof(allowed), num);
        }
        return unsupported(m, "fps", allowed, err);
    }
    /* An alias named for one modality ("...-t2v", "...-i2v") holds the
     * client to it, as the vendor's model of that name would. */
    if (out->n_images > 0 && modality == VG_MODALITY_T2V && m->i2v)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "model \"%s\" is text-to-video and does not "
                            "accept reference images (\"files\"); the "
                            "image-to-video model is \"%s\"",
                            out->model_name, i2v_sibling(catalog, m));
    if (out->n_images == 0 && modality == VG_MODALITY_I2V)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "model \"%s\" is image-to-video; send a "
                            "reference image in \"files\"",
                            out->model_name);
    if (out->n_images > 0 && !m->i2v)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "model \"%s\" is text-to-video only and does not "
                            "accept reference images (\"files\")",
                            m->name);
    if (out->n_images == 0 && !m->t2v)
        return vg_error_set(err, 400, "unsupported_parameter", "files",
                            "model \"%s\" is image-to-video only; send a "
                            "reference image in \"files\"",
                            m->name);
    return 0;
}

static int validate(json_t *body, const vg_catalog *catalog,
                    const vg_limits *limits, const char *tmp_dir,
                    const url_source *source, vg_arena *arena,
                    vg_video_request *out, vg_error *err)
{
    if (limits == NULL)
        limits = &req_default_limits;
    /* Images the caller added from multipart parts are kept: *out is only
     * filled in, never reset, here. */
    out->model = NULL;
    out->provider = NULL;
    out->seed = -1;
    out->fps = DEFAULT_FPS;
    if (!json_is_object(body))
        return vg_error_set(err, 422, "validation_error", "",
                            "the request body must be a JSON object");
    if (check_schema(body, limits, tmp_dir, source, arena, out, err) != 0)
        return -1;
    return check_model(catalog, out, err);
}

int vg_request_validate(json_t *body, const vg_catalog *catalog,
                        const vg_limits *limits, const char *tmp_dir,
                        vg_arena *arena, vg_video_request *out, vg_error *err)
{
    url_source source = {true, NULL};
    return validate(body, catalog, limits, tmp_dir, &source, arena, out, err);
}

int vg_request_validate_fetched(json_t *body, const vg_catalog *catalog,
                                const vg_limits *limits, const char *tmp_dir,
                                vg_fetch_task *fetched, vg_arena *arena,
                                vg_video_request *out, vg_error *err)
{
    url_source source = {false, fetched};
    return validate(body, catalog, limits, tmp_dir, &source, arena, out, err);
}

/*
 * The URLs validation would fetch are those it reaches: it goes through
 * "files" in order and stops at the first bad element, so the plan stops
 * at the first element that fails without the network (a URL of a
 * refused scheme, something neither URL nor data: URL). A body whose
 * "files" is malformed or too long, or that fails an earlier field,
 * plans nothing: validation refuses it at once.
 */
int vg_request_plan_fetch(json_t *body, const vg_limits *limits,
                          const char *tmp_dir, vg_arena *arena,
                          vg_video_request *out, vg_fetch_task **task,
                          vg_error *err)
{
    *task = NULL;
    if (limits == NULL)
        limits = &req_default_limits;
    if (!limits->allow_image_urls || tmp_dir == NULL || *tmp_dir == '\0' ||
        !json_is_object(body))
        return 0;
    json_t *files = field_value(body, "files");
    size_t n = json_is_array(files) ? json_array_size(files) : 1;
    if (!json_is_array(files) && !json_is_string(files))
        return 0;
    if (json_is_array(files) &&
        (size_t)out->n_images + n > (size_t)req_max_images(limits))
        return 0;
    vg_fetch_limits fetch = req_fetch_limits(limits);
    int slots[VG_MAX_IMAGES];
    int planned = 0;
    for (size_t i = 0; i < n && i < VG_MAX_IMAGES; i++) {
        json_t *item = json_is_array(files) ? json_array_get(files, i) : files;
        if (!json_is_string(item))
            return 0;
        const char *url = json_string_value(item);
        vg_error ignored;
        if (req_is_image_url(url) &&
            vg_fetch_check_url(url, &fetch, &ignored) == 0)
            slots[planned++] = (int)i;
        else if (strncasecmp(url, "data:", 5) != 0)
            break;
    }
    if (planned == 0)
        return 0;
    /* The fields before "files" fail first, as in validation, and then
     * without fetching anything. */
    if (check_fields(body, limits, arena, out, err) != 0)
        return -1;
    vg_fetch_task *t = vg_fetch_task_new(&fetch, tmp_dir);
    for (int k = 0; t != NULL && k < planned; k++) {
        const char *url =
            json_is_array(files)
                ? json_string_value(json_array_get(files, (size_t)slots[k]))
                : json_string_value(files);
        if (vg_fetch_task_add(t, slots[k], url) != 0) {
            vg_fetch_task_free(t);
            t = NULL;
        }
    }
    if (t == NULL)
        return vg_error_set(err, 500, "internal_error", "files",
                            "out of memory planning the image fetches");
    *task = t;
    return 0;
}
