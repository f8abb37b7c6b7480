/*
 * router.c - segment-wise path matching; see router.h.
 */
#include "http/router.h"

#include <string.h>

/* Matches one pattern; captures into params. */
static bool match(const char *pattern, const char *path, char **params,
                  int *n_params, vg_arena *arena)
{
    int n = 0;
    while (*pattern != '\0' && *path != '\0') {
        if (*pattern != '/' || *path != '/')
            return false;
        pattern++;
        path++;
        const char *pend = strchr(pattern, '/');
        const char *send = strchr(path, '/');
        size_t plen = pend ? (size_t)(pend - pattern) : strlen(pattern);
        size_t slen = send ? (size_t)(send - path) : strlen(path);
        if (plen == 2 && strncmp(pattern, "**", 2) == 0) {
            if (*path == '\0' || n >= 4)
                return false;
            if (arena != NULL)
                params[n] = vg_arena_strdup(arena, path);
            *n_params = n + 1;
            return true;
        }
        if (plen == 1 && *pattern == '*') {
            if (slen == 0 || n >= 4)
                return false;
            if (arena != NULL)
                params[n] = vg_arena_strndup(arena, path, slen);
            n++;
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            return false;
        }
        pattern += plen;
        path += slen;
    }
    if (*pattern != '\0' || *path != '\0')
        return false;
    *n_params = n;
    return true;
}

const vg_route *vg_router_match(const vg_route *routes, const char *method,
                                const char *path, char **params,
                                int *n_params, vg_arena *arena,
                                const char **allowed)
{
    static __thread char methods[64];
    methods[0] = '\0';
    *allowed = NULL;
    bool head = strcmp(method, "HEAD") == 0;
    for (const vg_route *r = routes; r->method != NULL; r++) {
        int ignored;
        if (!match(r->pattern, path, params, &ignored, NULL))
            continue;
        if (strcmp(r->method, method) == 0 ||
            (head && strcmp(r->method, "GET") == 0)) {
            match(r->pattern, path, params, n_params, arena);
            return r;
        }
        if (strstr(methods, r->method) == NULL &&
            strlen(methods) + strlen(r->method) + 8 < sizeof(methods)) {
            if (methods[0] != '\0')
                strcat(methods, ", ");
            strcat(methods, r->method);
            if (strcmp(r->method, "GET") == 0)
                strcat(methods, ", HEAD");
        }
    }
    if (methods[0] != '\0')
        *allowed = methods;
    return NULL;
}
