/*
 * catalog.c - the model catalog's look-ups by name or alias, and the
 * names and frame sizes of resolutions and aspect ratios. It is built
 * from configuration JSON by catalog_json.c (the built-in one is in
 * catalog_default.c); api/models_json.c renders it for the models
 * endpoints.
 *
 * The catalog is read once at startup and never changes afterwards, so
 * every look-up is a plain linear scan over a handful of entries and the
 * model pointers handed out stay valid for the life of the server.
 * Configuration mistakes are caught when it is built, loudly, rather than
 * turning into odd 400s at request time.
 */
#include "core/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

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

void vg_catalog_free(vg_catalog *catalog)
{
    if (catalog == NULL)
        return;
    for (size_t i = 0; i < catalog->n_models; i++) {
        vg_model *m = &catalog->models[i];
        free(m->name);
        free(m->description);
        /* m->provider and m->provider_model point into routes[0]. */
        for (size_t k = 0; k < m->n_routes; k++) {
            free(m->routes[k].provider);
            free(m->routes[k].model);
            free(m->routes[k].i2v_model);
        }
        free(m->routes);
    }
    for (size_t i = 0; i < catalog->n_aliases; i++)
        free(catalog->aliases[i].name);
    free(catalog->models);
    free(catalog->aliases);
    free(catalog);
}

const vg_model *vg_catalog_lookup(const vg_catalog *catalog, const char *name,
                                  vg_modality *modality)
{
    *modality = VG_MODALITY_ANY;
    if (catalog == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < catalog->n_models; i++)
        if (strcmp(catalog->models[i].name, name) == 0)
            return &catalog->models[i];
    for (size_t i = 0; i < catalog->n_aliases; i++) {
        if (strcmp(catalog->aliases[i].name, name) == 0) {
            *modality = catalog->aliases[i].modality;
            return catalog->aliases[i].target;
        }
    }
    return NULL;
}

const vg_model *vg_catalog_find(const vg_catalog *catalog, const char *name)
{
    vg_modality ignored;
    return vg_catalog_lookup(catalog, name, &ignored);
}

void vg_catalog_set_availability(vg_catalog *catalog,
                                 vg_model_available_fn available, void *ctx)
{
    catalog->available = available;
    catalog->available_ctx = ctx;
}

bool vg_catalog_model_available(const vg_catalog *catalog,
                                const vg_model *model)
{
    return catalog->available == NULL ||
           catalog->available(catalog->available_ctx, model);
}

uint32_t vg_model_durations_at(const vg_model *model, vg_resolution r)
{
    if ((int)r < 0 || r >= VG_RES_COUNT || model->durations_at[r] == 0)
        return model->durations;
    return model->durations_at[r];
}

const char *vg_route_model_id(const vg_model_route *route, bool has_images)
{
    if (has_images && route->i2v_model != NULL)
        return route->i2v_model;
    return route->model;
}
