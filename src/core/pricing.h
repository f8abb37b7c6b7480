/*
 * pricing.h - what a request costs, in thousandths of a credit.
 *
 * price = per_second[resolution] * duration
 *         * audio_factor (when generate_audio) * flex_factor (when flex)
 * with the factors in thousandths and every division rounding up, so money
 * is never a floating-point number and never rounds in the caller's favour
 * by accident.
 */
#ifndef VG_PRICING_H
#define VG_PRICING_H

#include <stdint.h>

#include "core/request.h"

int64_t vg_price(const vg_model *model, vg_resolution resolution,
                 int duration, bool generate_audio, vg_tier tier);
int64_t vg_price_request(const vg_video_request *req);

#endif
