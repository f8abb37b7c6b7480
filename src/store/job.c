/*
 * job.c - the small helpers that go with vg_job and vg_delivery and belong
 * to no backend: naming a state and freeing what a store filled in.
 */
#include "store/store.h"

#include <stdlib.h>

const char *vg_job_state_name(vg_job_state s)
{
    switch (s) {
    case VG_JOB_QUEUED:
        return "queued";
    case VG_JOB_RUNNING:
        return "running";
    case VG_JOB_SUCCEEDED:
        return "succeeded";
    case VG_JOB_FAILED:
        return "failed";
    case VG_JOB_CANCELLED:
        return "cancelled";
    }
    /* A value outside the enum is a bug elsewhere; a name that says so is
     * more useful in a log line or a response than a crash. */
    return "unknown";
}

const char *vg_delivery_state_name(vg_delivery_state s)
{
    switch (s) {
    case VG_DELIVERY_PENDING:
        return "pending";
    case VG_DELIVERY_DELIVERED:
        return "delivered";
    case VG_DELIVERY_FAILED:
        return "failed";
    }
    return "unknown";
}

void vg_job_clear(vg_job *job)
{
    if (job == NULL)
        return;
    free(job->request_json);
    job->request_json = NULL;
    free(job->webhook_url);
    job->webhook_url = NULL;
}
