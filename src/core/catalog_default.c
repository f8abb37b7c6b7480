/*
 * catalog_default.c - the built-in model catalog, used when the
 * configuration lists no models.
 */
#include "core/catalog.h"

#include <stdio.h>
#include <stdlib.h>

/*
 * The built-in catalog is written as the same JSON an operator would put
 * in the config file, so the default goes through exactly the checks and
 * code paths that a configured catalog does.
 *
 * Besides the local renderer it lists the real models of the upstream
 * providers (docs/providers.md), each with the routes that serve it in
 * order of preference: the model's maker first, then resellers. A model
 * is only as capable as its narrowest route, because a job may fail over
 * to any of them: Seedance 1.5 Pro stops at 720p because Novita does,
 * Seedance 1.0 Pro takes 5 or 10 s because Novita does. A route names a
 * provider instance of the config; a model whose providers are not
 * configured is listed with "available": false.
 *
 * Prices are credits per second of video, with 1 credit standing for
 * about one US cent of the upstream's public list price (e.g. Veo 3.1 at
 * $0.40/s is 40). Seedance is billed by tokens upstream; its prices here
 * are the token price for a 24 fps clip per second, and audio doubles the
 * price of Seedance 1.5 Pro as it does upstream; its flex tier costs half.
 * Veo 3.x always makes sound on the Gemini API, so sound is included in
 * its price and "generate_audio": false is served by dropping the track.
 * Every upstream model lists fps [24] only: the contract's default, and
 * most of these providers take no frame-rate setting at all.
 *
 * Veo: current @google/genai offers generateVideos only on Vertex AI, and
 * a July 2026 third-party report (unconfirmed) has Veo 2.0 and 3.0
 * answering 404 on the Gemini API. So Veo 3.1 (preview) keeps the Gemini
 * API first, then Vertex AI, then fal; Veo 3.0 goes to Vertex AI, then
 * fal; Veo 2.0 only to Vertex AI.
 *
 * Provider model ids: "seedance-1-0-pro-250528" (BytePlus) and the fal and
 * Replicate ids were seen in several public client libraries;
 * "seedance-1-5-pro-251215" is the BytePlus id third-party guides give
 * (the Volcano Engine one is "doubao-seedance-1-5-pro-251215"): the most
 * plausible one, to be checked against the ModelArk console.
 */
static const char default_catalog_json[] =
    "[{\"name\": \"vidgate-local\","
    "  \"description\": \"vidgate's built-in offline renderer. It is not a "
    "generative AI model: it draws the prompt as an animated title over a "
    "moving scene whose colours and motion come from the prompt and the "
    "seed, or pans and zooms over the reference images, and can read the "
    "prompt aloud over a generated music bed, into a real H.264/AAC MP4. "
    "Needs no provider keys and no network.\","
    "  \"provider\": \"local\","
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\", \"4:3\", \"3:4\","
    "                      \"21:9\"],"
    "  \"durations\": {\"min\": 4, \"max\": 12},"
    "  \"fps\": [24, 25, 30],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"480P\": 1, \"720P\": 2, \"1080P\": 4},"
    "            \"audio_factor\": 1.5, \"flex_factor\": 0.5}},"
    " {\"name\": \"local\", \"alias_of\": \"vidgate-local\"},"
    " {\"name\": \"seedance-v1.5-pro\","
    "  \"description\": \"ByteDance's Seedance 1.5 Pro: text- and "
    "image-to-video that can also generate matching sound (speech, effects, "
    "ambience), at 480p or 720p.\","
    "  \"providers\": ["
    "    {\"provider\": \"byteplus\", \"model\": \"seedance-1-5-pro-251215\"},"
    "    {\"provider\": \"novita\", \"model\": \"seedance-v1.5-pro-t2v\", "
    "      \"i2v_model\": \"seedance-v1.5-pro-i2v\"},"
    "    {\"provider\": \"fal\", \"model\": "
    "      \"fal-ai/bytedance/seedance/v1.5/pro/text-to-video\", "
    "      \"i2v_model\": "
    "      \"fal-ai/bytedance/seedance/v1.5/pro/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\", \"4:3\", \"3:4\", "
    "    \"21:9\"],"
    "  \"durations\": {\"min\": 4, \"max\": 12},"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"480P\": 1.2, \"720P\": 2.6}, "
    "    \"audio_factor\": 2, \"flex_factor\": 0.5}},"
    " {\"name\": \"seedance-v1-pro\","
    "  \"description\": \"ByteDance's Seedance 1.0 Pro: text- and "
    "image-to-video up to 1080p, without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"byteplus\", \"model\": \"seedance-1-0-pro-250528\"},"
    "    {\"provider\": \"novita\", \"model\": \"seedance-v1-pro-t2v\", "
    "      \"i2v_model\": \"seedance-v1-pro-i2v\"},"
    "    {\"provider\": \"replicate\", \"model\": "
    "      \"bytedance/seedance-1-pro\"},"
    "    {\"provider\": \"fal\", \"model\": "
    "      \"fal-ai/bytedance/seedance/v1/pro/text-to-video\", \"i2v_model\": "
    "      \"fal-ai/bytedance/seedance/v1/pro/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\", \"4:3\", \"3:4\", "
    "    \"21:9\"],"
    "  \"durations\": [5, 10],"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"480P\": 2.45, \"720P\": 5.45, "
    "    \"1080P\": 12.25}, \"flex_factor\": 0.5}},"
    " {\"name\": \"kling-v2.1-master\","
    "  \"description\": \"Kuaishou's Kling 2.1 Master: its top text- and "
    "image-to-video tier, rendered at 1080p, without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"novita\", \"model\": \"kling-v2.1-t2v-master\", "
    "      \"i2v_model\": \"kling-v2.1-i2v-master\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\"],"
    "  \"durations\": [5, 10],"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"1080P\": 28}}},"
    " {\"name\": \"minimax-hailuo-02\","
    "  \"description\": \"MiniMax's Hailuo 02: text- and image-to-video at "
    "768p (asked for as 720P) or 1080p (6 s only), without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"novita\", \"model\": \"minimax-hailuo-02\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\"],"
    "  \"durations\": [6, 10],"
    "  \"durations_by_resolution\": {\"1080P\": [6]},"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"720P\": 4.7, \"1080P\": 8.2}}},"
    " {\"name\": \"wan-2.5-t2v-preview\","
    "  \"description\": \"Alibaba's Wan 2.5 (preview): text-to-video from "
    "480p to 1080p that can also generate a soundtrack.\","
    "  \"providers\": ["
    "    {\"provider\": \"novita\", \"model\": \"wan-2.5-t2v-preview\"}],"
    "  \"modalities\": [\"t2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\"],"
    "  \"durations\": [5, 10],"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"480P\": 5, \"720P\": 10, \"1080P\": "
    "    15}}},"
    " {\"name\": \"wan-2.2-t2v\","
    "  \"description\": \"Alibaba's Wan 2.2: text-to-video at 480p or 1080p, "
    "5 s clips, without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"novita\", \"model\": \"wan-2.2-t2v\"}],"
    "  \"modalities\": [\"t2v\"],"
    "  \"resolutions\": [\"480P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\", \"1:1\"],"
    "  \"durations\": [5],"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"480P\": 2, \"1080P\": 10}}},"
    " {\"name\": \"wan-2.1\","
    "  \"description\": \"Alibaba's Wan 2.1 (14B): text- and image-to-video "
    "at 480p or 720p, 5 s clips, without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"fal\", \"model\": \"fal-ai/wan-t2v\", "
    "      \"i2v_model\": \"fal-ai/wan-i2v\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"480P\", \"720P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": [5],"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"480P\": 4, \"720P\": 8}}},"
    " {\"name\": \"veo-3.1-generate-preview\","
    "  \"description\": \"Google's Veo 3.1 (preview): text- and "
    "image-to-video with generated sound, at 720p or 1080p (1080p at 8 s "
    "only).\","
    "  \"providers\": ["
    "    {\"provider\": \"google\", \"model\": \"veo-3.1-generate-preview\"},"
    "    {\"provider\": \"google-vertex\", \"model\": "
    "      \"veo-3.1-generate-preview\"},"
    "    {\"provider\": \"fal\", \"model\": \"fal-ai/veo3.1\", \"i2v_model\": "
    "      \"fal-ai/veo3.1/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": [4, 6, 8],"
    "  \"durations_by_resolution\": {\"1080P\": [8]},"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"720P\": 40, \"1080P\": 40}}},"
    " {\"name\": \"veo-3.1-fast-generate-preview\","
    "  \"description\": \"Google's Veo 3.1 Fast (preview): a quicker, cheaper "
    "Veo 3.1 with generated sound, at 720p or 1080p (1080p at 8 s only).\","
    "  \"providers\": ["
    "    {\"provider\": \"google\", \"model\": "
    "      \"veo-3.1-fast-generate-preview\"},"
    "    {\"provider\": \"google-vertex\", \"model\": "
    "      \"veo-3.1-fast-generate-preview\"},"
    "    {\"provider\": \"fal\", \"model\": \"fal-ai/veo3.1/fast\", "
    "      \"i2v_model\": \"fal-ai/veo3.1/fast/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": [4, 6, 8],"
    "  \"durations_by_resolution\": {\"1080P\": [8]},"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"720P\": 15, \"1080P\": 15}}},"
    " {\"name\": \"veo-3.0-generate-001\","
    "  \"description\": \"Google's Veo 3: text- and image-to-video with "
    "generated sound, at 720p or 1080p (1080p at 8 s only).\","
    "  \"providers\": ["
    "    {\"provider\": \"google-vertex\", \"model\": "
    "      \"veo-3.0-generate-001\"},"
    "    {\"provider\": \"fal\", \"model\": \"fal-ai/veo3\", \"i2v_model\": "
    "      \"fal-ai/veo3/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": [4, 6, 8],"
    "  \"durations_by_resolution\": {\"1080P\": [8]},"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"720P\": 40, \"1080P\": 40}}},"
    " {\"name\": \"veo-3.0-fast-generate-001\","
    "  \"description\": \"Google's Veo 3 Fast: a quicker, cheaper Veo 3 with "
    "generated sound, at 720p or 1080p (1080p at 8 s only).\","
    "  \"providers\": ["
    "    {\"provider\": \"google-vertex\", \"model\": "
    "      \"veo-3.0-fast-generate-001\"},"
    "    {\"provider\": \"fal\", \"model\": \"fal-ai/veo3/fast\", "
    "      \"i2v_model\": \"fal-ai/veo3/fast/image-to-video\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\", \"1080P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": [4, 6, 8],"
    "  \"durations_by_resolution\": {\"1080P\": [8]},"
    "  \"fps\": [24],"
    "  \"audio\": true,"
    "  \"price\": {\"per_second\": {\"720P\": 15, \"1080P\": 15}}},"
    " {\"name\": \"veo-2.0-generate-001\","
    "  \"description\": \"Google's Veo 2: text- and image-to-video at 720p, 5 "
    "to 8 s, without sound.\","
    "  \"providers\": ["
    "    {\"provider\": \"google-vertex\", \"model\": "
    "      \"veo-2.0-generate-001\"}],"
    "  \"modalities\": [\"t2v\", \"i2v\"],"
    "  \"resolutions\": [\"720P\"],"
    "  \"aspect_ratios\": [\"16:9\", \"9:16\"],"
    "  \"durations\": {\"min\": 5, \"max\": 8},"
    "  \"fps\": [24],"
    "  \"audio\": false,"
    "  \"price\": {\"per_second\": {\"720P\": 35}}},"
    " {\"name\": \"seedance-v1.5-pro-t2v\", \"alias_of\": "
    "\"seedance-v1.5-pro\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"seedance-v1.5-pro-i2v\", \"alias_of\": "
    "\"seedance-v1.5-pro\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"seedance-v1-pro-t2v\", \"alias_of\": \"seedance-v1-pro\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"seedance-v1-pro-i2v\", \"alias_of\": \"seedance-v1-pro\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"kling-v2.1-t2v-master\", \"alias_of\": "
    "\"kling-v2.1-master\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"kling-v2.1-i2v-master\", \"alias_of\": "
    "\"kling-v2.1-master\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"wan2.1-t2v-turbo\", \"alias_of\": \"wan-2.1\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"wan2.1-i2v-turbo\", \"alias_of\": \"wan-2.1\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"wan2.2-t2v\", \"alias_of\": \"wan-2.2-t2v\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"wan2.5-t2v-preview\", \"alias_of\": "
    "\"wan-2.5-t2v-preview\", "
    "  \"modality\": \"t2v\"}]";

vg_catalog *vg_catalog_default(void)
{
    json_error_t jerr;
    vg_error err;
    json_t *models = json_loads(default_catalog_json, 0, &jerr);
    vg_catalog *c = NULL;
    if (models != NULL)
        c = vg_catalog_from_json(models, &err);
    json_decref(models);
    /* The text is a constant of this file; failing here is a bug in it, and
     * a server without a catalog could not serve anything anyway. */
    if (c == NULL) {
        fprintf(stderr, "vidgate: built-in catalog is invalid\n");
        abort();
    }
    return c;
}
