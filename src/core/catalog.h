/*
 * catalog.h - the models vidgate serves and what each one supports.
 *
 * Models come from the "models" array of the JSON config file, or from the
 * built-in defaults when the file has none. A model names the providers that
 * can render it (its routes, in order of preference, each with that
 * provider's own model id), its modalities, the resolutions, aspect ratios,
 * durations and fps values it accepts, whether it can make audio, and its
 * price. A model's limits are what every one of its routes can serve, so a
 * job that fails over to the next route never meets a new refusal. A model
 * may instead be an alias of another ("alias_of"), because clients hard-code
 * model names from other vendors.
 */
#ifndef VG_CATALOG_H
#define VG_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef enum vg_resolution {
    VG_RES_480P,
    VG_RES_720P,
    VG_RES_1080P,
    VG_RES_COUNT
} vg_resolution;

typedef enum vg_aspect {
    VG_AR_16_9,
    VG_AR_9_16,
    VG_AR_1_1,
    VG_AR_4_3,
    VG_AR_3_4,
    VG_AR_21_9,
    VG_AR_COUNT
} vg_aspect;

typedef enum vg_tier { VG_TIER_DEFAULT, VG_TIER_FLEX } vg_tier;

#define VG_MIN_DURATION 4
#define VG_MAX_DURATION 12
#define VG_MAX_FPS 60
#define VG_MAX_ROUTES 8

/* One provider that serves a model. (Not "vg_route": that is the HTTP
 * route table's type, in http/http.h.) */
typedef struct vg_model_route {
    /* A provider instance name from the config ("novita", "byteplus",
     * "local"); at most 63 characters. */
    char *provider;
    /* The provider's model id (for Novita: the endpoint, e.g.
     * "seedance-v1.5-pro-t2v"). */
    char *model;
    /* The id to use when the job has reference images; NULL = model. */
    char *i2v_model;
} vg_model_route;

typedef struct vg_model {
    char *name;
    char *description;
    /* Routes in order of preference; n_routes is 1..VG_MAX_ROUTES. */
    vg_model_route *routes;
    size_t n_routes;
    /* routes[0].provider and routes[0].model, for code that knows only
     * one provider per model. They point into routes[0]: not owned. */
    char *provider;
    char *provider_model;
    bool t2v, i2v;
    unsigned resolutions; /* bit (1 << vg_resolution) */
    unsigned aspects;     /* bit (1 << vg_aspect) */
    uint32_t durations;   /* bit (1 << seconds), seconds in 4..12 */
    /* Durations allowed at one resolution when narrower than `durations`
     * (Veo makes 1080p only at 8 s); 0 = the same as `durations`. */
    uint32_t durations_at[VG_RES_COUNT];
    uint64_t fps; /* bit (1 << fps), fps in 1..60 */
    bool audio;   /* can generate an audio track */
    /* Price in thousandths of a credit per second of video, per resolution;
     * factors in thousandths (1500 = x1.5). */
    int64_t price_per_second[VG_RES_COUNT];
    int64_t audio_factor;
    int64_t flex_factor;
} vg_model;

/* The modality an alias stands for: OneInfer names a model per modality
 * ("seedance-v1.5-pro-t2v", "-i2v") where vidgate has one model for
 * both. */
typedef enum vg_modality {
    VG_MODALITY_ANY, /* whatever the target takes */
    VG_MODALITY_T2V, /* text only: reference images are refused */
    VG_MODALITY_I2V  /* a reference image is required */
} vg_modality;

typedef struct vg_alias {
    char *name;
    const vg_model *target;
    vg_modality modality;
} vg_alias;

/* Tells whether a model can take a job right now (some route's provider
 * is configured and healthy); NULL in place of one = all available. */
typedef bool (*vg_model_available_fn)(void *ctx, const vg_model *model);

typedef struct vg_catalog {
    vg_model *models;
    size_t n_models;
    vg_alias *aliases;
    size_t n_aliases;
    /* Who judges "available" for messages that list models (an unknown
     * model's 400); NULL = every model. Set once at start. */
    vg_model_available_fn available;
    void *available_ctx;
} vg_catalog;

/* Builds a catalog from a JSON array of model objects (see docs/config.md).
 * Returns NULL and fills err (status 0) when the array is malformed. */
vg_catalog *vg_catalog_from_json(json_t *models, vg_error *err);
/* The built-in catalog: the local renderer and its alias, and the real
 * models of the upstream providers (docs/config.md, README "Models"). */
vg_catalog *vg_catalog_default(void);
void vg_catalog_free(vg_catalog *catalog);

/* Finds a model by name or alias; NULL when unknown. */
const vg_model *vg_catalog_find(const vg_catalog *catalog, const char *name);
/* vg_catalog_find that also tells the modality the name stands for
 * (VG_MODALITY_ANY for a model's own name). */
const vg_model *vg_catalog_lookup(const vg_catalog *catalog, const char *name,
                                  vg_modality *modality);
/* Sets who judges "available" for the catalog's messages. */
void vg_catalog_set_availability(vg_catalog *catalog,
                                 vg_model_available_fn available, void *ctx);
/* Whether a model is available by that judge (true without one). */
bool vg_catalog_model_available(const vg_catalog *catalog,
                                const vg_model *model);

/* The durations (bit (1 << seconds)) a model allows at a resolution. */
uint32_t vg_model_durations_at(const vg_model *model, vg_resolution r);
/* The provider's model id a route uses for a job with or without
 * reference images. */
const char *vg_route_model_id(const vg_model_route *route, bool has_images);

/* Canonical spellings and parsing. Parsers accept lower case resolutions
 * ("720p") and the aspect aliases landscape/portrait/square; they return
 * -1 for anything else. */
const char *vg_resolution_name(vg_resolution r); /* "720P" */
const char *vg_aspect_name(vg_aspect a);         /* "16:9" */
int vg_resolution_parse(const char *s, vg_resolution *out);
int vg_aspect_parse(const char *s, vg_aspect *out);

/* Output frame size for a resolution and aspect ratio; both sides even.
 * The short side is the resolution's number (480, 720, 1080). */
void vg_frame_size(vg_resolution r, vg_aspect a, int *width, int *height);

#endif
