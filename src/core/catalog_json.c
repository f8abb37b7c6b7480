/*
 * catalog_json.c - builds the model catalog from configuration JSON (the
 * config file's "models", or the built-in catalog of catalog_default.c).
 * Configuration mistakes are caught here, loudly, rather than turning
 * into odd 400s at request time: unknown keys, prices missing for a
 * listed resolution, aliases that point nowhere, routes that do not fit.
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
/* A provider's own model id only goes into upstream URLs and bodies; the
 * bound just keeps a typo from becoming a multi-kilobyte URL. */
#define VG_ROUTE_MODEL_MAX 255

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
    json_object_foreach((json_t *)obj, key, value)
    {
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
    json_array_foreach(v, i, item)
    {
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
    json_array_foreach(v, i, item)
    {
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
    json_array_foreach(v, i, item)
    {
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

#define DURATIONS_WHAT                                                        \
    "must be a non-empty array of whole seconds in 4..12 or {\"min\": 4, "    \
    "\"max\": 12}"

/* A set of durations, written as an array of whole seconds or as
 * {"min", "max"}; false when it is neither. */
static bool parse_duration_set(const json_t *v, uint32_t *out)
{
    int s;
    *out = 0;
    if (json_is_object(v)) {
        int lo, hi;
        if (json_object_size(v) != 2 ||
            !int_in_range(json_object_get(v, "min"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &lo) ||
            !int_in_range(json_object_get(v, "max"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &hi) ||
            lo > hi)
            return false;
        for (s = lo; s <= hi; s++)
            *out |= UINT32_C(1) << s;
        return true;
    }
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    json_array_foreach(v, i, item)
    {
        if (!int_in_range(item, VG_MIN_DURATION, VG_MAX_DURATION, &s))
            return false;
        *out |= UINT32_C(1) << s;
    }
    return true;
}

static int parse_durations(const json_t *v, vg_model *m, vg_error *err)
{
    if (!parse_duration_set(v, &m->durations))
        return config_error(err, m->name, "durations", DURATIONS_WHAT);
    return 0;
}

/*
 * "durations_by_resolution": {"1080P": [8]}. Some models allow fewer
 * durations at one resolution (Veo makes 1080p only at 8 s, Hailuo only
 * at 6 s); each entry must be a subset of "durations", so the plain list
 * stays the union a client can read at a glance.
 */
static int parse_durations_by_resolution(const json_t *v, vg_model *m,
                                         vg_error *err)
{
    static const char field[] = "durations_by_resolution";
    const char *key;
    json_t *value;
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return config_error(err, m->name, field,
                            "must be an object such as {\"1080P\": [8]}");
    json_object_foreach((json_t *)v, key, value)
    {
        vg_resolution r;
        uint32_t set;
        if (vg_resolution_parse(key, &r) != 0 || !(m->resolutions & (1u << r)))
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s\" names "
                                "\"%s\", which is not one of the model's "
                                "\"resolutions\"",
                                m->name, field, key);
        if (m->durations_at[r] != 0)
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s\" gives %s "
                                "twice",
                                m->name, field, vg_resolution_name(r));
        if (!parse_duration_set(value, &set))
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s.%s\" %s", m->name,
                                field, key, DURATIONS_WHAT);
        if (set & ~m->durations)
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s.%s\" must "
                                "only list durations that \"durations\" "
                                "lists",
                                m->name, field, key);
        m->durations_at[r] = set;
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
    json_array_foreach(v, i, item)
    {
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
    json_object_foreach((json_t *)v, key, value)
    {
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
    json_object_foreach(per, key, value)
    {
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
                                m->name, vg_resolution_name(r));
        given[r] = true;
    }
    for (int r = 0; r < VG_RES_COUNT; r++) {
        if ((m->resolutions & (1u << r)) && !given[r])
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.per_second\" "
                                "has no price for %s, which the model lists",
                                m->name, vg_resolution_name(r));
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

/* ---- routes ----------------------------------------------------------- */

static int route_error(vg_error *err, const vg_model *m, size_t i,
                       const char *what)
{
    return vg_error_set(err, 0, "config_error", "providers",
                        "models: model \"%s\": \"providers[%zu]\" %s", m->name,
                        i, what);
}

static bool is_route_model_id(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 &&
           json_string_length(v) <= VG_ROUTE_MODEL_MAX;
}

/* One entry of "providers": {"provider", "model", "i2v_model"}. The route
 * is counted before it is filled, so a half-read route is freed too. */
static int parse_route(const json_t *item, size_t i, vg_model *m,
                       vg_error *err)
{
    static const char *const allowed[] = {"provider", "model", "i2v_model",
                                          NULL};
    char what[160];
    const char *key;
    json_t *value;
    if (!json_is_object(item))
        return route_error(err, m, i,
                           "must be an object such as {\"provider\": "
                           "\"novita\", \"model\": \"...\"}");
    json_object_foreach((json_t *)item, key, value)
    {
        bool known = false;
        for (size_t k = 0; allowed[k] != NULL; k++)
            if (strcmp(key, allowed[k]) == 0)
                known = true;
        if (!known) {
            snprintf(what, sizeof(what),
                     "has an unknown key \"%.60s\" (a route has only "
                     "provider, model, i2v_model)",
                     key);
            return route_error(err, m, i, what);
        }
    }
    vg_model_route *r = &m->routes[m->n_routes++];

    json_t *v = json_object_get(item, "provider");
    if (!json_is_string(v) ||
        !name_is_valid(json_string_value(v), VG_PROVIDER_NAME_MAX))
        return route_error(err, m, i,
                           "needs \"provider\": a provider name such as "
                           "\"novita\" (letters, digits, . _ - : /, at "
                           "most 63)");
    for (size_t k = 0; k + 1 < m->n_routes; k++) {
        if (strcmp(m->routes[k].provider, json_string_value(v)) == 0) {
            snprintf(what, sizeof(what),
                     "names the provider \"%s\" a second time",
                     json_string_value(v));
            return route_error(err, m, i, what);
        }
    }
    r->provider = xstrdup(json_string_value(v));

    v = json_object_get(item, "model");
    if (!is_route_model_id(v))
        return route_error(err, m, i,
                           "needs \"model\": the provider's model id, a "
                           "non-empty string of at most 255 bytes");
    r->model = xstrdup(json_string_value(v));

    v = json_object_get(item, "i2v_model");
    if (v != NULL && !is_route_model_id(v))
        return route_error(err, m, i,
                           "\"i2v_model\" must be a non-empty string of at "
                           "most 255 bytes");
    if (v != NULL)
        r->i2v_model = xstrdup(json_string_value(v));
    return 0;
}

/*
 * Who serves the model: either one "provider" (with an optional
 * "provider_model", the form older configs use) or a "providers" list of
 * routes in order of preference. Both forms end up as routes, and
 * m->provider / m->provider_model name the first one.
 */
static int parse_routes(const json_t *obj, vg_model *m, vg_error *err)
{
    json_t *one = json_object_get(obj, "provider");
    json_t *list = json_object_get(obj, "providers");
    json_t *pm = json_object_get(obj, "provider_model");
    size_t i;
    json_t *item;

    if (one != NULL && list != NULL)
        return config_error(err, m->name, "providers",
                            "cannot go with \"provider\": give either one "
                            "\"provider\" or a \"providers\" list");
    if (list == NULL) {
        if (!json_is_string(one) ||
            !name_is_valid(json_string_value(one), VG_PROVIDER_NAME_MAX))
            return config_error(err, m->name, "provider",
                                "must be a provider name such as "
                                "\"local\" (letters, digits, . _ - : /, "
                                "at most 63), or give a \"providers\" "
                                "list");
        if (pm != NULL && !is_route_model_id(pm))
            return config_error(err, m->name, "provider_model",
                                "must be a non-empty string of at most 255 "
                                "bytes");
        m->routes = calloc(1, sizeof(*m->routes));
        if (m->routes == NULL) {
            fputs("vidgate: out of memory\n", stderr);
            abort();
        }
        m->n_routes = 1;
        m->routes[0].provider = xstrdup(json_string_value(one));
        m->routes[0].model =
            xstrdup(pm != NULL ? json_string_value(pm) : m->name);
    } else {
        if (pm != NULL)
            return config_error(err, m->name, "provider_model",
                                "goes only with \"provider\"; with "
                                "\"providers\" each route names its own "
                                "\"model\"");
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > VG_MAX_ROUTES)
            return config_error(err, m->name, "providers",
                                "must be an array of 1 to 8 routes such as "
                                "{\"provider\": \"novita\", \"model\": "
                                "\"...\"}");
        m->routes = calloc(json_array_size(list), sizeof(*m->routes));
        if (m->routes == NULL) {
            fputs("vidgate: out of memory\n", stderr);
            abort();
        }
        json_array_foreach(list, i, item)
        {
            if (parse_route(item, i, m, err) != 0)
                return -1;
        }
    }
    m->provider = m->routes[0].provider;
    m->provider_model = m->routes[0].model;
    return 0;
}

/* An image-to-video id on a model that takes no images is a mistake in
 * the config: no job could ever use it. */
static int check_routes_fit(vg_model *m, vg_error *err)
{
    for (size_t i = 0; i < m->n_routes; i++)
        if (m->routes[i].i2v_model != NULL && !m->i2v)
            return route_error(err, m, i,
                               "has an \"i2v_model\", but the model's "
                               "\"modalities\" lack \"i2v\"");
    return 0;
}

static int parse_model(const json_t *obj, vg_model *m, vg_error *err)
{
    static const char *const allowed[] = {
        "name",           "description", "provider",
        "provider_model", "providers",   "modalities",
        "resolutions",    "durations",   "durations_by_resolution",
        "aspect_ratios",  "fps",         "audio",
        "price",          NULL};
    const char *name = m->name;
    if (check_keys(obj, allowed, name, err) != 0)
        return -1;

    json_t *v = json_object_get(obj, "description");
    if (v != NULL && !json_is_string(v))
        return config_error(err, name, "description", "must be a string");
    m->description = xstrdup(v != NULL ? json_string_value(v) : "");

    if (parse_routes(obj, m, err) != 0 ||
        parse_modalities(json_object_get(obj, "modalities"), m, err) != 0 ||
        check_routes_fit(m, err) != 0 ||
        parse_resolutions(json_object_get(obj, "resolutions"), m, err) != 0 ||
        parse_aspects(json_object_get(obj, "aspect_ratios"), m, err) != 0 ||
        parse_durations(json_object_get(obj, "durations"), m, err) != 0 ||
        parse_durations_by_resolution(
            json_object_get(obj, "durations_by_resolution"), m, err) != 0)
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
                                          "modality", NULL};
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return vg_error_set(err, 0, "config_error", key,
                                "models: alias \"%s\": \"%s\" is not "
                                "allowed in an alias (only name, alias_of, "
                                "modality, description)",
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

/* An alias's "modality": absent (the target's), "t2v" or "i2v", and one
 * the target has. */
static int parse_alias_modality(const json_t *obj, const char *name,
                                const vg_model *target, vg_modality *out,
                                vg_error *err)
{
    json_t *v = json_object_get(obj, "modality");
    *out = VG_MODALITY_ANY;
    if (v == NULL)
        return 0;
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "t2v") == 0)
        *out = VG_MODALITY_T2V;
    else if (s != NULL && strcmp(s, "i2v") == 0)
        *out = VG_MODALITY_I2V;
    else
        return vg_error_set(err, 0, "config_error", "modality",
                            "models: alias \"%s\": \"modality\" must be "
                            "\"t2v\" or \"i2v\"",
                            name);
    if ((*out == VG_MODALITY_T2V && !target->t2v) ||
        (*out == VG_MODALITY_I2V && !target->i2v))
        return vg_error_set(err, 0, "config_error", "modality",
                            "models: alias \"%s\": \"%s\" does not offer "
                            "\"%s\"",
                            name, target->name, s);
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
    json_array_foreach(models, i, item)
    {
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

    json_array_foreach(models, i, item)
    {
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
    json_array_foreach(models, i, item)
    {
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
            json_array_foreach(models, k, other)
            {
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
        vg_modality modality;
        if (parse_alias_modality(item, name, m, &modality, err) != 0)
            goto fail;
        vg_alias *a = &c->aliases[c->n_aliases++];
        a->name = xstrdup(name);
        a->target = m;
        a->modality = modality;
    }
    return c;

fail:
    vg_catalog_free(c);
    return NULL;
}
