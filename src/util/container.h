/*
 * container.h - from a member embedded in a struct back to the struct,
 * for the intrusive structures in util/ (heap.h, table.h).
 */
#ifndef VG_CONTAINER_H
#define VG_CONTAINER_H

#include <stddef.h>

#define VG_CONTAINER_OF(ptr, type, member)                                   \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
