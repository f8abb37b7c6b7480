/*
 * provider.c - the events providers send (see provider.h).
 */
#include "core/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vg_provider_event *vg_provider_event_new(vg_provider_event_kind kind,
                                         const char *job_id,
                                         const char *provider)
{
    vg_provider_event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return NULL;
    ev->kind = kind;
    snprintf(ev->job_id, sizeof(ev->job_id), "%s", job_id);
    if (provider != NULL)
        snprintf(ev->provider, sizeof(ev->provider), "%s", provider);
    ev->seed = ev->completion_tokens = ev->total_tokens = -1;
    return ev;
}

void vg_provider_event_free(vg_provider_event *event)
{
    if (event == NULL)
        return;
    free(event->task);
    free(event->file);
    free(event);
}

int vg_provider_send_done(vg_provider *p, const char *job_id, const char *file,
                          int64_t total_tokens, int64_t completion_tokens,
                          vg_error *err)
{
    vg_provider_event *ev =
        vg_provider_event_new(VG_EVENT_DONE, job_id, p->name);
    if (ev == NULL || (ev->file = strdup(file)) == NULL) {
        vg_provider_event_free(ev);
        return vg_error_set(err, 500, "internal_error", NULL, "out of memory");
    }
    ev->verified = true;
    ev->total_tokens = total_tokens;
    ev->completion_tokens = completion_tokens;
    p->sink.deliver(p->sink.ctx, ev);
    return 0;
}

int vg_provider_send_failed(vg_provider *p, const char *job_id,
                            const vg_error *error, vg_error *err)
{
    vg_provider_event *ev =
        vg_provider_event_new(VG_EVENT_FAILED, job_id, p->name);
    if (ev == NULL)
        return vg_error_set(err, error->status, error->code, error->field,
                            "%s", error->message);
    ev->error = *error;
    p->sink.deliver(p->sink.ctx, ev);
    return 0;
}
