/*
 * picture.h - image-to-video: the frames of a clip made from the
 * request's reference images.
 *
 * Each image is decoded once, oriented, composited and scaled once to
 * cover the frame; the scaled copies are all the source keeps. Frame N is
 * then a pure function of N, the images and the seed: a pan and zoom per
 * image (or a still camera with gentle in-frame motion), crossfading from
 * one image to the next. frames.c hands frames here when a request has
 * images.
 */
#ifndef VG_PICTURE_H
#define VG_PICTURE_H

#include "util/error.h"
#include "render/render.h"

struct AVFrame;

typedef struct vg_picture_source vg_picture_source;

/* At most this many images make a clip; further ones are ignored (the
 * request layer accepts no more than this anyway). */
#define VG_PICTURE_MAX_IMAGES 8

/* Decodes and prepares params->images (the first VG_PICTURE_MAX_IMAGES).
 * Returns NULL and fills err: 422 "invalid_image" (field "files", the
 * message naming the image by position) when an image cannot be used,
 * 500 "render_failed" otherwise. Keeps nothing of params. */
vg_picture_source *vg_picture_source_new(const vg_render_params *params,
                                         vg_error *err);

/* Draws frame `index` (0 .. fps*duration-1) into a writable YUV420P frame
 * of the params' size, BT.709 limited range. */
void vg_picture_source_draw(vg_picture_source *source, int index,
                            struct AVFrame *frame);

void vg_picture_source_free(vg_picture_source *source);

#endif
