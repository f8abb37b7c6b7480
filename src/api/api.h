/*
 * api.h - the endpoint handlers, one file per group of endpoints, wired
 * into the route table in routes.c.
 */
#ifndef VG_API_H
#define VG_API_H

#include "app/app.h"
#include "http/http.h"

int vg_api_oauth_token(vg_app *app, vg_http_request *req);
int vg_api_models(vg_app *app, vg_http_request *req);
int vg_api_legacy_models(vg_app *app, vg_http_request *req);
int vg_api_model_pricing(vg_app *app, vg_http_request *req);
int vg_api_credits(vg_app *app, vg_http_request *req);
int vg_api_generate_video(vg_app *app, vg_http_request *req);
int vg_api_generate_video_resume(vg_app *app, vg_http_request *req);
int vg_api_file(vg_app *app, vg_http_request *req);
int vg_api_health(vg_app *app, vg_http_request *req);
int vg_api_ready(vg_app *app, vg_http_request *req);

int vg_api_get_job(vg_app *app, vg_http_request *req);
int vg_api_list_jobs(vg_app *app, vg_http_request *req);
int vg_api_cancel_job(vg_app *app, vg_http_request *req);
int vg_api_job_events(vg_app *app, vg_http_request *req);
int vg_api_webhook_secret(vg_app *app, vg_http_request *req);
int vg_api_rotate_webhook_secret(vg_app *app, vg_http_request *req);

/* The "data" object of a succeeded job, as the seed page shows it. */
json_t *vg_api_job_data(vg_app *app, const vg_job *job, vg_arena *arena);
/* The job object of the job API (status, progress, eta, error, data). */
json_t *vg_api_job_json(vg_app *app, const vg_job *job, vg_arena *arena);
/* Succeeded, failed or cancelled. */
bool vg_job_finished(const vg_job *job);
/* Reads the account's job: 404 (and the answer sent) when it is missing
 * or another account's. Returns 0 with *job filled, or the MHD result of
 * the error answer (*answered set). */
int vg_api_load_job(vg_app *app, vg_http_request *req, const char *id,
                    vg_job *job, bool *answered);

#endif
