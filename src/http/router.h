/*
 * router.h - matches a method and path against a route table.
 */
#ifndef VG_ROUTER_H
#define VG_ROUTER_H

#include "http/http.h"

/* Returns the route for method and path, capturing "*" and "**" segments
 * into params (arena strings). When only the method is wrong, returns NULL
 * and sets *allowed to the methods the path takes ("GET, HEAD"). */
const vg_route *vg_router_match(const vg_route *routes, const char *method,
                                const char *path, char **params,
                                int *n_params, vg_arena *arena,
                                const char **allowed);

#endif
