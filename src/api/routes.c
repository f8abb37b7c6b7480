/*
 * routes.c - every endpoint of the API in one table: method, path,
 * whether it needs a key or token, whether it reads a body, and its
 * handler.
 */
#include "api/api.h"

const vg_route vg_api_routes[] = {
    {"POST", "/v1/ula/oauth-authentication", false, VG_BODY_SMALL,
     vg_api_oauth_token, NULL},
    {"GET", "/v1/ula/models", true, VG_BODY_NONE, vg_api_models, NULL},
    {"POST", "/v1/ula/generate-video", true, VG_BODY_JSON_OR_FORM,
     vg_api_generate_video, vg_api_generate_video_resume},
    {"GET", "/v1/ula/jobs", true, VG_BODY_NONE, vg_api_list_jobs, NULL},
    {"GET", "/v1/ula/jobs/*", true, VG_BODY_NONE, vg_api_get_job, NULL},
    {"DELETE", "/v1/ula/jobs/*", true, VG_BODY_NONE, vg_api_cancel_job,
     NULL},
    {"GET", "/v1/ula/jobs/*/events", true, VG_BODY_NONE, vg_api_job_events,
     NULL},
    {"GET", "/v1/ula/webhooks/secret", true, VG_BODY_NONE,
     vg_api_webhook_secret, NULL},
    {"POST", "/v1/ula/webhooks/secret/rotate", true, VG_BODY_NONE,
     vg_api_rotate_webhook_secret, NULL},
    {"GET", "/v1/developer/get-all-models", false, VG_BODY_NONE,
     vg_api_legacy_models, NULL},
    {"GET", "/v1/developer/get-model-pricing", false, VG_BODY_NONE,
     vg_api_model_pricing, NULL},
    {"GET", "/v1/developer/*/get-credits", true, VG_BODY_NONE,
     vg_api_credits, NULL},
    {"GET", "/v1/files/**", false, VG_BODY_NONE, vg_api_file, NULL},
    {"GET", "/healthz", false, VG_BODY_NONE, vg_api_health, NULL},
    {"GET", "/readyz", false, VG_BODY_NONE, vg_api_ready, NULL},
    {NULL, NULL, false, VG_BODY_NONE, NULL, NULL},
};
