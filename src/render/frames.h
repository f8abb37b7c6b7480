/*
 * frames.h - the pictures of a local render, drawn one frame at a time.
 *
 * A frame source turns the render parameters into frame N on demand, so
 * the renderer never holds more than one picture. The same parameters
 * always give the same pixels: a clip is a pure function of its request,
 * which is what makes a seed mean something.
 *
 * This first source draws seed- and prompt-coloured gradients and soft
 * shapes with the prompt as a title over them (title.h), or, when the
 * request has reference images, hands every frame to the picture source
 * (picture.h). A richer one can replace it behind the same three calls.
 */
#ifndef VG_FRAMES_H
#define VG_FRAMES_H

#include "util/error.h"
#include "render/render.h"

struct AVFrame;

typedef struct vg_frame_source vg_frame_source;

/* Prepares the scene: colours and motion from the seed and the prompt,
 * or the reference images, each decoded once. Returns NULL and fills err:
 * 422 "invalid_image" when an image cannot be used, 500 "render_failed"
 * otherwise. The params must outlive nothing: the source keeps what it
 * needs. */
vg_frame_source *vg_frame_source_new(const vg_render_params *params,
                                     vg_error *err);

/* Draws frame `index` (0 .. fps*duration-1) into a writable YUV420P frame
 * of the params' size, BT.709 limited range. */
void vg_frame_source_draw(vg_frame_source *source, int index,
                          struct AVFrame *frame);

void vg_frame_source_free(vg_frame_source *source);

#endif
