/*
 * catalog.c - builds the model catalog from configuration JSON, answers
 * look-ups by name or alias, and renders the catalog for the models
 * endpoints.
 *
 * The catalog is read once at startup and never changes afterwards, so
 * every look-up is a plain linear scan over a handful of entries and the
 * model pointers handed out stay valid for the life of the server.
 * Configuration mistakes are caught here, loudly, rather than turning into
 * odd 400s at request time: unknown keys, prices missing for a listed
 * resolution, aliases that point nowhere.
 */
#include "core/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

/* Both limits match the fixed-size columns of the job store (model[128],
 * provider[64]), so a configured name can always be recorded in full. */
#define VG_MODEL_NAME_MAX 127
#define VG_PROVIDER_NAME_MAX 63

static const char *const resolution_names[VG_RES_COUNT] = {"480P", "720P",
                                                           "1080P"};

static const char *const aspect_names[VG_AR_COUNT] = {"16:9", "9:16", "1:1",
                                                      "4:3",  "3:4",  "21:9"};

/* Width and height for each resolution and aspect ratio. The short side is
 * the resolution's number; the long side is the exact ratio rounded to an
 * even number, because H.264 with 4:2:0 chroma needs even dimensions
 * (16:9 at 480 is 853.3, hence 854). */
/* clang-format off */
static const int frame_sizes[VG_RES_COUNT][VG_AR_COUNT][2] = {
    /* 480P */
    {{854, 480}, {480, 854}, {480, 480}, {640, 480}, {480, 640},
     {1120, 480}},
    /* 720P */
    {{1280, 720}, {720, 1280}, {720, 720}, {960, 720}, {720, 960},
     {1680, 720}},
    /* 1080P */
    {{1920, 1080}, {1080, 1920}, {1080, 1080}, {1440, 1080}, {1080, 1440},
     {2520, 1080}},
};
/* clang-format on */

/* The built-in catalog is written as the same JSON an operator would put
 * in the config file, so the default goes through exactly the checks and
 * code paths that a configured catalog does. */
static const char default_catalog_json[] =
    "[{\"name\": \"vidgate-local\","
    "  \"description\": \"vidgate's built-in offline renderer. It is not a "
    "generative AI model: it draws the prompt as an animated title over a "
    "moving scene whose colours and motion come from the prompt and the "
    "seed, or pans and zooms over the reference images, and can read the "
    "prompt aloud over a generated music bed, into a real H.264/AAC MP4. "
    "Needs no provider keys and no network.\","
    "  \"provider\": \"local\","
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\", \"4:3\", \"3:4\","
    "                      \"21:9\"],"
    "  \"durations\": {\"min\": 4, \"max\": 12},"
    "  \"fps\": [24, 25, 30],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"480P\": 1, \"720P\": 2, \"1080P\": 4},"
    "            \"audio_factor\": 1.5, \"flex_factor\": 0.5}},"
    " {\"name\": \"local\", \"alias_of\": \"vidgate-local\"}]";

const char *vg_resolution_name(vg_resolution r)
{
    if ((int)r < 0 || r >= VG_RES_COUNT)
        return "?";
    return resolution_names[r];
}

const char *vg_aspect_name(vg_aspect a)
{
    if ((int)a < 0 || a >= VG_AR_COUNT)
        return "?";
    return aspect_names[a];
}

int vg_resolution_parse(const char *s, vg_resolution *out)
{
    if (s == NULL)
        return -1;
    for (int r = 0; r < VG_RES_COUNT; r++) {
        if (strcasecmp(s, resolution_names[r]) == 0) {
            *out = (vg_resolution)r;
            return 0;
        }
    }
    return -1;
}

int vg_aspect_parse(const char *s, vg_aspect *out)
{
    static const struct {
        const char *word;
        vg_aspect aspect;
    } words[] = {{"landscape", VG_AR_16_9},
                 {"portrait", VG_AR_9_16},
                 {"square", VG_AR_1_1}};
    if (s == NULL)
        return -1;
    for (int a = 0; a < VG_AR_COUNT; a++) {
        if (strcmp(s, aspect_names[a]) == 0) {
            *out = (vg_aspect)a;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(s, words[i].word) == 0) {
            *out = words[i].aspect;
            return 0;
        }
    }
    return -1;
}

void vg_frame_size(vg_resolution r, vg_aspect a, int *width, int *height)
{
    if ((int)r < 0 || r >= VG_RES_COUNT)
        r = VG_RES_720P;
    if ((int)a < 0 || a >= VG_AR_COUNT)
        a = VG_AR_16_9;
    *width = frame_sizes[r][a][0];
    *height = frame_sizes[r][a][1];
}

/* ---- building from JSON ---------------------------------------------- */

static int config_error(vg_error *err, const char *model, const char *field,
                        const char *what)
{
    return vg_error_set(err, 0, "config_error", field,
                        "models: model \"%s\": \"%s\" %s", model, field, what);
}

static bool name_is_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
                  c == ':' || c == '/';
        if (!ok)
            return false;
    }
    return true;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        fputs("vidgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

/*
 * A JSON number in credits (or a factor) to thousandths, exactly.
 * Doubles cannot hold most decimals exactly, so rather than multiply by
 * 1000 and round (which would silently accept 0.0004), the value is printed
 * with three decimals and accepted only when that text reads back as the
 * very same double: i.e. the config said at most three decimals.
 */
static int json_to_thousandths(const json_t *v, int64_t *out)
{
    char text[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -1;
        snprintf(text, sizeof(text), "%lld", (long long)i);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0.0 && d < 1e15))
            return -1;
        snprintf(text, sizeof(text), "%.3f", d);
        if (strtod(text, NULL) != d)
            return -1;
    } else {
        return -1;
    }
    return vg_parse_credits(text, out);
}

static int check_keys(const json_t *obj, const char *const *allowed,
                      const char *model, vg_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return config_error(err, model, key,
                                "is not a model setting (a typo?)");
    }
    return 0;
}

static int parse_modalities(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of \"t2v\", \"i2v\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "modalities", what);
    json_array_foreach(v, i, item) {
        const char *s = json_string_value(item);
        if (s != NULL && strcmp(s, "t2v") == 0)
            m->t2v = true;
        else if (s != NULL && strcmp(s, "i2v") == 0)
            m->i2v = true;
        else
            return config_error(err, m->name, "modalities", what);
    }
    return 0;
}

static int parse_resolutions(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what =
        "must be a non-empty array of \"480P\", \"720P\", \"1080P\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "resolutions", what);
    json_array_foreach(v, i, item) {
        vg_resolution r;
        if (vg_resolution_parse(json_string_value(item), &r) != 0)
            return config_error(err, m->name, "resolutions", what);
        m->resolutions |= 1u << r;
    }
    return 0;
}

static int parse_aspects(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of \"16:9\", \"9:16\", "
                       "\"1:1\", \"4:3\", \"3:4\", \"21:9\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "aspect_ratios", what);
    json_array_foreach(v, i, item) {
        vg_aspect a;
        if (vg_aspect_parse(json_string_value(item), &a) != 0)
            return config_error(err, m->name, "aspect_ratios", what);
        m->aspects |= 1u << a;
    }
    return 0;
}

static bool int_in_range(const json_t *v, int lo, int hi, int *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return false;
    *out = (int)i;
    return true;
}

static int parse_durations(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of whole seconds in 4..12 "
                       "or {\"min\": 4, \"max\": 12}";
    int s;
    if (json_is_object(v)) {
        int lo, hi;
        if (json_object_size(v) != 2 ||
            !int_in_range(json_object_get(v, "min"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &lo) ||
            !int_in_range(json_object_get(v, "max"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &hi) ||
            lo > hi)
            return config_error(err, m->name, "durations", what);
        for (s = lo; s <= hi; s++)
            m->durations |= UINT32_C(1) << s;
        return 0;
    }
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "durations", what);
    json_array_foreach(v, i, item) {
        if (!int_in_range(item, VG_MIN_DURATION, VG_MAX_DURATION, &s))
            return config_error(err, m->name, "durations", what);
        m->durations |= UINT32_C(1) << s;
    }
    return 0;
}

static int parse_fps(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of integers in 1..60";
    size_t i;
    json_t *item;
    int f;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "fps", what);
    json_array_foreach(v, i, item) {
        if (!int_in_range(item, 1, VG_MAX_FPS, &f))
            return config_error(err, m->name, "fps", what);
        m->fps |= UINT64_C(1) << f;
    }
    return 0;
}

static int parse_price(const json_t *v, vg_model *m, vg_error *err)
{
    static const char *const allowed[] = {"per_second", "audio_factor",
                                          "flex_factor", "currency", NULL};
    if (!json_is_object(v))
        return config_error(err, m->name, "price",
                            "must be an object with \"per_second\"");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price\" has an "
                                "unknown key \"%s\"",
                                m->name, key);
    }

    /* Credits are the only currency; the key is accepted so that the
     * output of the models endpoint can be pasted back into a config. */
    json_t *currency = json_object_get(v, "currency");
    if (currency != NULL &&
        !(json_is_string(currency) &&
          strcmp(json_string_value(currency), "credits") == 0))
        return config_error(err, m->name, "price",
                            "currency must be \"credits\"");

    json_t *per = json_object_get(v, "per_second");
    if (!json_is_object(per))
        return config_error(err, m->name, "price",
                            "must have \"per_second\": {\"480P\": credits, "
                            "...}");
    bool given[VG_RES_COUNT] = {false};
    json_object_foreach(per, key, value) {
        vg_resolution r;
        if (vg_resolution_parse(key, &r) != 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.per_second\" "
                                "has an unknown resolution \"%s\"",
                                m->name, key);
        if (json_to_thousandths(value, &m->price_per_second[r]) != 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": price per second "
                                "for %s must be a non-negative number of "
                                "credits with at most 3 decimals",
                                m->name, resolution_names[r]);
        given[r] = true;
    }
    for (int r = 0; r < VG_RES_COUNT; r++) {
        if ((m->resolutions & (1u << r)) && !given[r])
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.per_second\" "
                                "has no price for %s, which the model lists",
                                m->name, resolution_names[r]);
    }

    static const char *const factors[] = {"audio_factor", "flex_factor"};
    int64_t *slots[] = {&m->audio_factor, &m->flex_factor};
    for (int i = 0; i < 2; i++) {
        json_t *f = json_object_get(v, factors[i]);
        *slots[i] = 1000;
        if (f == NULL)
            continue;
        if (json_to_thousandths(f, slots[i]) != 0 || *slots[i] == 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.%s\" must be "
                                "a positive number with at most 3 decimals",
                                m->name, factors[i]);
    }
    return 0;
}

static int parse_model(const json_t *obj, vg_model *m, vg_error *err)
{
    static const char *const allowed[] = {
        "name",       "description", "provider",  "provider_model",
        "modalities", "resolutions", "durations", "aspect_ratios",
        "fps",        "audio",       "price",     NULL};
    const char *name = m->name;
    if (check_keys(obj, allowed, name, err) != 0)
        return -1;

    json_t *v = json_object_get(obj, "description");
    if (v != NULL && !json_is_string(v))
        return config_error(err, name, "description", "must be a string");
    m->description = xstrdup(v != NULL ? json_string_value(v) : "");

    v = json_object_get(obj, "provider");
    if (!json_is_string(v) ||
        !name_is_valid(json_string_value(v), VG_PROVIDER_NAME_MAX))
        return config_error(err, name, "provider",
                            "must be a provider name such as \"local\" "
                            "(letters, digits, . _ - : /, at most 63)");
    m->provider = xstrdup(json_string_value(v));

    v = json_object_get(obj, "provider_model");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0))
        return config_error(err, name, "provider_model",
                            "must be a non-empty string");
    m->provider_model = xstrdup(v != NULL ? json_string_value(v) : name);

    if (parse_modalities(json_object_get(obj, "modalities"), m, err) != 0 ||
        parse_resolutions(json_object_get(obj, "resolutions"), m, err) != 0 ||
        parse_aspects(json_object_get(obj, "aspect_ratios"), m, err) != 0 ||
        parse_durations(json_object_get(obj, "durations"), m, err) != 0)
        return -1;

    /* A model that does not say otherwise renders at the contract's
     * default frame rate and without sound. */
    v = json_object_get(obj, "fps");
    if (v == NULL)
        m->fps = UINT64_C(1) << 24;
    else if (parse_fps(v, m, err) != 0)
        return -1;

    v = json_object_get(obj, "audio");
    if (v != NULL && !json_is_boolean(v))
        return config_error(err, name, "audio", "must be true or false");
    m->audio = json_is_true(v);

    return parse_price(json_object_get(obj, "price"), m, err);
}

static int check_alias_keys(const json_t *obj, const char *name, vg_error *err)
{
    static const char *const allowed[] = {"name", "alias_of", "description",
                                          NULL};
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return vg_error_set(err, 0, "config_error", key,
                                "models: alias \"%s\": \"%s\" is not "
                                "allowed in an alias (only name, alias_of, "
                                "description)",
                                name, key);
    }
    json_t *d = json_object_get(obj, "description");
    if (d != NULL && !json_is_string(d))
        return vg_error_set(err, 0, "config_error", "description",
                            "models: alias \"%s\": \"description\" must be "
                            "a string",
                            name);
    return 0;
}

/* True when `name` is already taken by one of the first n entries. */
static bool name_taken(json_t *models, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        json_t *other = json_object_get(json_array_get(models, i), "name");
        if (strcmp(json_string_value(other), name) == 0)
            return true;
    }
    return false;
}

/* Checks the names of every entry and counts models and aliases. */
static int count_entries(json_t *models, size_t *n_models, size_t *n_aliases,
                         vg_error *err)
{
    size_t i;
    json_t *item;
    *n_models = 0;
    *n_aliases = 0;
    if (!json_is_array(models) || json_array_size(models) == 0)
        return vg_error_set(err, 0, "config_error", "models",
                            "\"models\" must be a non-empty array of model "
                            "objects");
    json_array_foreach(models, i, item) {
        json_t *name = json_object_get(item, "name");
        if (!json_is_object(item))
            return vg_error_set(err, 0, "config_error", "models",
                                "models[%zu] must be an object", i);
        if (!json_is_string(name) ||
            !name_is_valid(json_string_value(name), VG_MODEL_NAME_MAX))
            return vg_error_set(err, 0, "config_error", "name",
                                "models[%zu]: \"name\" must be a model name "
                                "(letters, digits, . _ - : /, at most 127)",
                                i);
        if (name_taken(models, i, json_string_value(name)))
            return vg_error_set(err, 0, "config_error", "name",
                                "models: the name \"%s\" is used twice",
                                json_string_value(name));
        if (json_object_get(item, "alias_of") != NULL)
            (*n_aliases)++;
        else
            (*n_models)++;
    }
    if (*n_models == 0)
        return vg_error_set(err, 0, "config_error", "models",
                            "\"models\" has only aliases; at least one real "
                            "model is needed");
    return 0;
}

vg_catalog *vg_catalog_from_json(json_t *models, vg_error *err)
{
    /* Counting first lets the arrays be allocated once, so the model
     * pointers that aliases and requests hold never move. */
    size_t n_models, n_aliases, i;
    json_t *item;
    if (count_entries(models, &n_models, &n_aliases, err) != 0)
        return NULL;

    vg_catalog *c = calloc(1, sizeof(*c));
    vg_model *ms = calloc(n_models, sizeof(*ms));
    vg_alias *as = calloc(n_aliases ? n_aliases : 1, sizeof(*as));
    if (c == NULL || ms == NULL || as == NULL) {
        fputs("vidgate: out of memory\n", stderr);
        abort();
    }
    c->models = ms;
    c->aliases = as;

    json_array_foreach(models, i, item) {
        if (json_object_get(item, "alias_of") != NULL)
            continue;
        vg_model *m = &c->models[c->n_models++];
        m->name = xstrdup(json_string_value(json_object_get(item, "name")));
        if (parse_model(item, m, err) != 0)
            goto fail;
    }

    /* Second pass: aliases, now that every model they may name exists.
     * An alias must name a real model, not another alias, which rules out
     * chains and loops in one check. */
    json_array_foreach(models, i, item) {
        json_t *of = json_object_get(item, "alias_of");
        if (of == NULL)
            continue;
        const char *name = json_string_value(json_object_get(item, "name"));
        if (check_alias_keys(item, name, err) != 0)
            goto fail;
        if (!json_is_string(of)) {
            vg_error_set(err, 0, "config_error", "alias_of",
                         "models: alias \"%s\": \"alias_of\" must be the "
                         "name of a model",
                         name);
            goto fail;
        }
        const char *target = json_string_value(of);
        const vg_model *m = NULL;
        for (size_t k = 0; k < c->n_models; k++)
            if (strcmp(c->models[k].name, target) == 0)
                m = &c->models[k];
        if (m == NULL) {
            bool is_alias = false;
            json_t *other;
            size_t k;
            json_array_foreach(models, k, other) {
                const char *n =
                    json_string_value(json_object_get(other, "name"));
                if (strcmp(n, target) == 0)
                    is_alias = true;
            }
            vg_error_set(err, 0, "config_error", "alias_of",
                         is_alias
                             ? "models: alias \"%s\": \"alias_of\" names "
                               "\"%s\", which is itself an alias; point it "
                               "at the model directly"
                             : "models: alias \"%s\": \"alias_of\" names "
                               "\"%s\", which is not a model in the catalog",
                         name, target);
            goto fail;
        }
        vg_alias *a = &c->aliases[c->n_aliases++];
        a->name = xstrdup(name);
        a->target = m;
    }
    return c;

fail:
    vg_catalog_free(c);
    return NULL;
}

vg_catalog *vg_catalog_default(void)
{
    json_error_t jerr;
    vg_error err;
    json_t *models = json_loads(default_catalog_json, 0, &jerr);
    vg_catalog *c = NULL;
    if (models != NULL)
        c = vg_catalog_from_json(models, &err);
    json_decref(models);
    /* The text is a constant of this file; failing here is a bug in it, and
     * a server without a catalog could not serve anything anyway. */
    if (c == NULL) {
        fprintf(stderr, "vidgate: built-in catalog is invalid\n");
        abort();
    }
    return c;
}

void vg_catalog_free(vg_catalog *catalog)
{
    if (catalog == NULL)
        return;
    for (size_t i = 0; i < catalog->n_models; i++) {
        vg_model *m = &catalog->models[i];
        free(m->name);
        free(m->description);
        free(m->provider);
        free(m->provider_model);
    }
    for (size_t i = 0; i < catalog->n_aliases; i++)
        free(catalog->aliases[i].name);
    free(catalog->models);
    free(catalog->aliases);
    free(catalog);
}

const vg_model *vg_catalog_find(const vg_catalog *catalog, const char *name)
{
    if (catalog == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < catalog->n_models; i++)
        if (strcmp(catalog->models[i].name, name) == 0)
            return &catalog->models[i];
    for (size_t i = 0; i < catalog->n_aliases; i++)
        if (strcmp(catalog->aliases[i].name, name) == 0)
            return catalog->aliases[i].target;
    return NULL;
}

/* ---- rendering ------------------------------------------------------- */

static json_t *model_capabilities(const vg_model *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "description", json_string(m->description));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_t *providers = json_array();
    json_array_append_new(providers, json_string(m->provider));
    json_object_set_new(o, "providers", providers);

    json_t *mod = json_array();
    if (m->t2v)
        json_array_append_new(mod, json_string("t2v"));
    if (m->i2v)
        json_array_append_new(mod, json_string("i2v"));
    json_object_set_new(o, "modalities", mod);

    json_t *res = json_array();
    for (int r = 0; r < VG_RES_COUNT; r++)
        if (m->resolutions & (1u << r))
            json_array_append_new(res, json_string(resolution_names[r]));
    json_object_set_new(o, "resolutions", res);

    json_t *ar = json_array();
    for (int a = 0; a < VG_AR_COUNT; a++)
        if (m->aspects & (1u << a))
            json_array_append_new(ar, json_string(aspect_names[a]));
    json_object_set_new(o, "aspect_ratios", ar);

    json_t *dur = json_array();
    for (int s = VG_MIN_DURATION; s <= VG_MAX_DURATION; s++)
        if (m->durations & (UINT32_C(1) << s))
            json_array_append_new(dur, json_integer(s));
    json_object_set_new(o, "durations", dur);

    json_t *fps = json_array();
    for (int f = 1; f <= VG_MAX_FPS; f++)
        if (m->fps & (UINT64_C(1) << f))
            json_array_append_new(fps, json_integer(f));
    json_object_set_new(o, "fps", fps);

    json_object_set_new(o, "audio", json_boolean(m->audio));

    json_t *price = json_object();
    json_object_set_new(price, "currency", json_string("credits"));
    json_t *per = json_object();
    for (int r = 0; r < VG_RES_COUNT; r++)
        if (m->resolutions & (1u << r))
            json_object_set_new(
                per, resolution_names[r],
                json_real(vg_credits_to_double(m->price_per_second[r])));
    json_object_set_new(price, "per_second", per);
    json_object_set_new(price, "audio_factor",
                        json_real(vg_credits_to_double(m->audio_factor)));
    json_object_set_new(price, "flex_factor",
                        json_real(vg_credits_to_double(m->flex_factor)));
    json_object_set_new(o, "price", price);
    return o;
}

json_t *vg_catalog_to_json(const vg_catalog *catalog)
{
    json_t *list = json_array();
    for (size_t i = 0; i < catalog->n_models; i++) {
        const vg_model *m = &catalog->models[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(m->name));
        json_object_update_new(o, model_capabilities(m));
        json_t *aliases = json_array();
        for (size_t k = 0; k < catalog->n_aliases; k++)
            if (catalog->aliases[k].target == m)
                json_array_append_new(aliases,
                                      json_string(catalog->aliases[k].name));
        json_object_set_new(o, "aliases", aliases);
        json_array_append_new(list, o);
    }
    /* Aliases are listed as full entries too: clients pick a name from
     * this list and read its capabilities without resolving anything. */
    for (size_t k = 0; k < catalog->n_aliases; k++) {
        const vg_alias *a = &catalog->aliases[k];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(a->name));
        json_object_set_new(o, "alias_of", json_string(a->target->name));
        json_object_update_new(o, model_capabilities(a->target));
        json_array_append_new(list, o);
    }
    json_t *data = json_object();
    json_object_set_new(data, "models", list);
    return data;
}

static json_t *legacy_entry(const char *name, const vg_model *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "model_name", json_string(name));
    json_object_set_new(o, "description", json_string(m->description));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_object_set_new(o, "type", json_string("video"));
    return o;
}

json_t *vg_catalog_to_legacy_json(const vg_catalog *catalog)
{
    json_t *list = json_array();
    for (size_t i = 0; i < catalog->n_models; i++)
        json_array_append_new(
            list, legacy_entry(catalog->models[i].name, &catalog->models[i]));
    for (size_t k = 0; k < catalog->n_aliases; k++)
        json_array_append_new(list, legacy_entry(catalog->aliases[k].name,
                                                 catalog->aliases[k].target));
    json_t *data = json_object();
    json_object_set_new(data, "models", list);
    return data;
}
