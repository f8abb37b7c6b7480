/*
 * pricing.c - the price of a generation, in thousandths of a credit.
 *
 *   price = per_second[resolution] * duration
 *   if generate_audio: price = ceil(price * audio_factor / 1000)
 *   if flex:           price = ceil(price * flex_factor / 1000)
 *
 * Prices and factors are integers in thousandths (see catalog.h), so the
 * result is exact and reproducible: the reservation at create time and the
 * settlement afterwards always agree. Rounding up means a fraction of a
 * thousandth is charged, never given away. Example: 1 credit/s at 480P for
 * 5 s with audio (x1.5) on flex (x0.5): 5000 -> 7500 -> 3750, i.e. 3.75
 * credits.
 */
#include "core/pricing.h"

/* An impossible price: larger than any balance, so an overflowing product
 * is refused as unaffordable rather than wrapping to something cheap. */
#define PRICE_OVERFLOW INT64_MAX

/*
 * ceil(amount * factor / 1000) for non-negative operands without
 * overflowing in the intermediate product: amount is split into whole
 * thousands (multiplied exactly) and a remainder below 1000 (whose product
 * with any sane factor is small).
 */
static int64_t apply_factor(int64_t amount, int64_t factor)
{
    if (amount < 0 || factor < 0)
        return PRICE_OVERFLOW;
    int64_t whole = amount / 1000, rest = amount % 1000;
    int64_t result, part;
    if (__builtin_mul_overflow(whole, factor, &result) ||
        __builtin_mul_overflow(rest, factor, &part))
        return PRICE_OVERFLOW;
    part = (part + 999) / 1000;
    if (__builtin_add_overflow(result, part, &result))
        return PRICE_OVERFLOW;
    return result;
}

int64_t vg_price(const vg_model *model, vg_resolution resolution, int duration,
                 bool generate_audio, vg_tier tier)
{
    if (model == NULL || (int)resolution < 0 || resolution >= VG_RES_COUNT ||
        duration < 0)
        return PRICE_OVERFLOW;
    int64_t price;
    if (__builtin_mul_overflow(model->price_per_second[resolution],
                               (int64_t)duration, &price))
        return PRICE_OVERFLOW;
    if (generate_audio)
        price = apply_factor(price, model->audio_factor);
    if (tier == VG_TIER_FLEX && price != PRICE_OVERFLOW)
        price = apply_factor(price, model->flex_factor);
    return price;
}

int64_t vg_price_request(const vg_video_request *req)
{
    return vg_price(req->model, req->resolution, req->duration,
                    req->generate_audio, req->tier);
}
