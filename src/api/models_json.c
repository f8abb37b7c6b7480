/*
 * models_json.c - the catalog as the models endpoints show it (see
 * models_json.h); models_api.c serves these renderings.
 */
#include "api/models_json.h"

#include "util/parse.h"

/* The route providers in order of preference. Only names: the
 * providers' own model ids are the operator's business. */
static json_t *route_providers(const vg_model *m)
{
    json_t *providers = json_array();
    for (size_t i = 0; i < m->n_routes; i++)
        json_array_append_new(providers, json_string(m->routes[i].provider));
    return providers;
}

static json_t *duration_list(uint32_t set)
{
    json_t *list = json_array();
    for (int s = VG_MIN_DURATION; s <= VG_MAX_DURATION; s++)
        if (set & (UINT32_C(1) << s))
            json_array_append_new(list, json_integer(s));
    return list;
}

/* {"480P": credits, ...} per second, for the resolutions the model has. */
static json_t *per_second(const vg_model *m)
{
    json_t *per = json_object();
    for (int r = 0; r < VG_RES_COUNT; r++)
        if (m->resolutions & (1u << r))
            json_object_set_new(
                per, vg_resolution_name((vg_resolution)r),
                json_real(vg_credits_to_double(m->price_per_second[r])));
    return per;
}

/* The price multipliers for audio and for the flex tier, into o. */
static void set_price_factors(json_t *o, const vg_model *m)
{
    json_object_set_new(o, "audio_factor",
                        json_real(vg_credits_to_double(m->audio_factor)));
    json_object_set_new(o, "flex_factor",
                        json_real(vg_credits_to_double(m->flex_factor)));
}

static json_t *model_capabilities(const vg_model *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "description", json_string(m->description));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_object_set_new(o, "providers", route_providers(m));

    json_t *mod = json_array();
    if (m->t2v)
        json_array_append_new(mod, json_string("t2v"));
    if (m->i2v)
        json_array_append_new(mod, json_string("i2v"));
    json_object_set_new(o, "modalities", mod);

    json_t *res = json_array();
    for (int r = 0; r < VG_RES_COUNT; r++)
        if (m->resolutions & (1u << r))
            json_array_append_new(res, json_string(vg_resolution_name((vg_resolution)r)));
    json_object_set_new(o, "resolutions", res);

    json_t *ar = json_array();
    for (int a = 0; a < VG_AR_COUNT; a++)
        if (m->aspects & (1u << a))
            json_array_append_new(ar, json_string(vg_aspect_name((vg_aspect)a)));
    json_object_set_new(o, "aspect_ratios", ar);

    json_object_set_new(o, "durations", duration_list(m->durations));
    /* Only the resolutions that narrow the list; {} when none does. */
    json_t *by_res = json_object();
    for (int r = 0; r < VG_RES_COUNT; r++)
        if ((m->resolutions & (1u << r)) && m->durations_at[r] != 0)
            json_object_set_new(by_res, vg_resolution_name((vg_resolution)r),
                                duration_list(m->durations_at[r]));
    json_object_set_new(o, "durations_by_resolution", by_res);

    json_t *fps = json_array();
    for (int f = 1; f <= VG_MAX_FPS; f++)
        if (m->fps & (UINT64_C(1) << f))
            json_array_append_new(fps, json_integer(f));
    json_object_set_new(o, "fps", fps);

    json_object_set_new(o, "audio", json_boolean(m->audio));

    json_t *price = json_object();
    json_object_set_new(price, "currency", json_string("credits"));
    json_object_set_new(price, "per_second", per_second(m));
    set_price_factors(price, m);
    json_object_set_new(o, "price", price);
    return o;
}

static bool is_available(vg_model_available_fn available, void *ctx,
                         const vg_model *m)
{
    return available == NULL || available(ctx, m);
}

json_t *vg_models_json(const vg_catalog *catalog,
                       vg_model_available_fn available, void *ctx)
{
    json_t *list = json_array();
    for (size_t i = 0; i < catalog->n_models; i++) {
        const vg_model *m = &catalog->models[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(m->name));
        json_object_update_new(o, model_capabilities(m));
        json_object_set_new(o, "available",
                            json_boolean(is_available(available, ctx, m)));
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
        if (a->modality != VG_MODALITY_ANY)
            json_object_set_new(o, "modalities",
                                json_pack("[s]", a->modality == VG_MODALITY_T2V
                                                     ? "t2v"
                                                     : "i2v"));
        json_object_set_new(
            o, "available",
            json_boolean(is_available(available, ctx, a->target)));
        json_array_append_new(list, o);
    }
    json_t *data = json_object();
    json_object_set_new(data, "models", list);
    return data;
}

static json_t *legacy_entry(const char *name, const vg_model *m,
                            bool available)
{
    json_t *o = json_object();
    json_object_set_new(o, "model_name", json_string(name));
    json_object_set_new(o, "description", json_string(m->description));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_object_set_new(o, "providers", route_providers(m));
    json_object_set_new(o, "type", json_string("video"));
    json_object_set_new(o, "available", json_boolean(available));
    return o;
}

/* {"models": [...]}: entry() of every model, then of every alias, with
 * the names a client sends. */
static json_t *entry_list(const vg_catalog *catalog,
                          json_t *(*entry)(const char *name, const vg_model *m,
                                           bool available),
                          vg_model_available_fn available, void *ctx)
{
    json_t *list = json_array();
    for (size_t i = 0; i < catalog->n_models; i++) {
        const vg_model *m = &catalog->models[i];
        json_array_append_new(
            list, entry(m->name, m, is_available(available, ctx, m)));
    }
    for (size_t k = 0; k < catalog->n_aliases; k++) {
        const vg_alias *a = &catalog->aliases[k];
        json_array_append_new(
            list,
            entry(a->name, a->target, is_available(available, ctx, a->target)));
    }
    json_t *data = json_object();
    json_object_set_new(data, "models", list);
    return data;
}

json_t *vg_models_legacy_json(const vg_catalog *catalog,
                              vg_model_available_fn available, void *ctx)
{
    return entry_list(catalog, legacy_entry, available, ctx);
}

/* One entry of get-model-pricing: the name a client sends, where it runs,
 * and what a second of video costs at each resolution. */
static json_t *pricing_entry(const char *name, const vg_model *m,
                             bool available)
{
    json_t *o = json_object();
    json_object_set_new(o, "model_name", json_string(name));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_object_set_new(o, "providers", route_providers(m));
    json_object_set_new(o, "type", json_string("video"));
    json_object_set_new(o, "currency", json_string("credits"));
    json_object_set_new(o, "price_per_second", per_second(m));
    set_price_factors(o, m);
    json_object_set_new(o, "available", json_boolean(available));
    return o;
}

json_t *vg_models_pricing_json(const vg_catalog *catalog,
                               vg_model_available_fn available, void *ctx)
{
    return entry_list(catalog, pricing_entry, available, ctx);
}
