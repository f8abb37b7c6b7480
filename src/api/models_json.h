/*
 * models_json.h - the catalog rendered for the models endpoints: each
 * model with its capabilities, route providers, prices and whether it
 * is available now (asked through `available`, or all when it is NULL).
 */
#ifndef VG_MODELS_JSON_H
#define VG_MODELS_JSON_H

#include <jansson.h>

#include "core/catalog.h"

/* GET /v1/ula/models "data": {"models": [...]} with every capability,
 * the route providers and "available". */
json_t *vg_models_json(const vg_catalog *catalog,
                       vg_model_available_fn available, void *ctx);
/* GET /v1/developer/get-all-models "data": {"models": [{model_name,
 * description, ...}]}. */
json_t *vg_models_legacy_json(const vg_catalog *catalog,
                              vg_model_available_fn available, void *ctx);

/* GET /v1/developer/get-model-pricing "data": {"models": [{model_name,
 * provider, providers, currency, price_per_second {resolution: credits},
 * audio_factor, flex_factor, available}]}, aliases included. */
json_t *vg_models_pricing_json(const vg_catalog *catalog,
                               vg_model_available_fn available, void *ctx);

#endif
