/*
 * error.c - see error.h.
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vg_error_set(vg_error *err, int status, const char *code,
                 const char *field, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void vg_error_clear(vg_error *err)
{
    memset(err, 0, sizeof(*err));
}
