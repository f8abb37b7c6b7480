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
int vg_api_credits(vg_app *app, vg_http_request *req);
int vg_api_generate_video(vg_app *app, vg_http_request *req);
int vg_api_generate_video_resume(vg_app *app, vg_http_request *req);
int vg_api_file(vg_app *app, vg_http_request *req);
int vg_api_health(vg_app *app, vg_http_request *req);

/* The "data" object of a finished job, as the seed page shows it. */
json_t *vg_api_job_data(vg_app *app, const vg_job *job, vg_arena *arena);

#endif
