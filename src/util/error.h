/*
 * error.h - the one error type every layer fills in.
 *
 * An error carries the HTTP status it maps to, a stable machine-readable
 * code, a human message and, where one field is at fault, its name. The HTTP
 * layer turns it into the contract's failure envelope unchanged.
 */
#ifndef VG_ERROR_H
#define VG_ERROR_H

typedef struct vg_error {
    int status;        /* HTTP status: 400, 401, 403, 404, 413, 415, 422... */
    char code[40];     /* e.g. "validation_error", "insufficient_credits" */
    char field[40];    /* offending field, or "" */
    char message[512]; /* what is wrong, and what is allowed */
} vg_error;

/* Fills *err and returns -1, so callers can `return vg_error_set(...)`. */
int vg_error_set(vg_error *err, int status, const char *code,
                 const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void vg_error_clear(vg_error *err);

#endif
