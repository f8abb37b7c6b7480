/*
 * catalog.c - builds the model catalog from configuration JSON and
 * answers look-ups by name or alias (api/models_json.c renders it for
 * the models endpoints).
 *
 * The catalog is read once at startup and never changes afterwards, so
 * every look-up is a plain linear scan over a handful of entries and the
 * model pointers handed out stay valid for the life of the server.
 * Configuration mistakes are caught here, loudly, rather than turning into
 * odd 400s at request time: unknown keys, prices missing for a listed
 * resolution, aliases that point nowhere.
 */
#include "core/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

/* Both limits match the fixed-size columns of the job store (model[128],
 * provider[64]), so a configured name can always be recorded in full. */
#define VG_MODEL_NAME_MAX 127
#define VG_PROVIDER_NAME_MAX 63
/* A provider's own model id only goes into upstream URLs and bodies; the
 * bound just keeps a typo from becoming a multi-kilobyte URL. */
#define VG_ROUTE_MODEL_MAX 255

static const char *const resolution_names[VG_RES_COUNT] = {"480P", "720P",
                                                           "1080P"};

static const char *const aspect_names[VG_AR_COUNT] = {"16:9", "9:16", "1:1",
                                                      "4:3",  "3:4",  "21:9"};

/* Width and height for each resolution and aspect ratio. The short side is
 * the resolution's number; the long side is the exact ratio rounded to an
 * even number, because H.264 with 4:2:0 chroma needs even dimensions
 * (16:9 at 480 is 853.3, hence 854). */
/* clang-format off */
static const int frame_sizes[VG_RES_COUNT][VG_AR_COUNT][2] = {
    /* 480P */
    {{854, 480}, {480, 854}, {480, 480}, {640, 480}, {480, 640},
     {1120, 480}},
    /* 720P */
    {{1280, 720}, {720, 1280}, {720, 720}, {960, 720}, {720, 960},
     {1680, 720}},
    /* 1080P */
    {{1920, 1080}, {1080, 1920}, {1080, 1080}, {1440, 1080}, {1080, 1440},
     {2520, 1080}},
};
/* clang-format on */

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
    " {\"name\": \"seedance-v1.5-pro-t2v\", \"alias_of\": \"seedance-v1.5-pro\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"seedance-v1.5-pro-i2v\", \"alias_of\": \"seedance-v1.5-pro\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"seedance-v1-pro-t2v\", \"alias_of\": \"seedance-v1-pro\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"seedance-v1-pro-i2v\", \"alias_of\": \"seedance-v1-pro\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"kling-v2.1-t2v-master\", \"alias_of\": \"kling-v2.1-master\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"kling-v2.1-i2v-master\", \"alias_of\": \"kling-v2.1-master\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"wan2.1-t2v-turbo\", \"alias_of\": \"wan-2.1\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"wan2.1-i2v-turbo\", \"alias_of\": \"wan-2.1\", "
    "  \"modality\": \"i2v\"},"
    " {\"name\": \"wan2.2-t2v\", \"alias_of\": \"wan-2.2-t2v\", "
    "  \"modality\": \"t2v\"},"
    " {\"name\": \"wan2.5-t2v-preview\", \"alias_of\": \"wan-2.5-t2v-preview\", "
    "  \"modality\": \"t2v\"}]";

const char *vg_resolution_name(vg_resolution r)
{
    if ((int)r < 0 || r >= VG_RES_COUNT)
        return "?";
    return resolution_names[r];
}

const char *vg_aspect_name(vg_aspect a)
{
    if ((int)a < 0 || a >= VG_AR_COUNT)
        return "?";
    return aspect_names[a];
}

int vg_resolution_parse(const char *s, vg_resolution *out)
{
    if (s == NULL)
        return -1;
    for (int r = 0; r < VG_RES_COUNT; r++) {
        if (strcasecmp(s, resolution_names[r]) == 0) {
            *out = (vg_resolution)r;
            return 0;
        }
    }
    return -1;
}

int vg_aspect_parse(const char *s, vg_aspect *out)
{
    static const struct {
        const char *word;
        vg_aspect aspect;
    } words[] = {{"landscape", VG_AR_16_9},
                 {"portrait", VG_AR_9_16},
                 {"square", VG_AR_1_1}};
    if (s == NULL)
        return -1;
    for (int a = 0; a < VG_AR_COUNT; a++) {
        if (strcmp(s, aspect_names[a]) == 0) {
            *out = (vg_aspect)a;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(s, words[i].word) == 0) {
            *out = words[i].aspect;
            return 0;
        }
    }
    return -1;
}

void vg_frame_size(vg_resolution r, vg_aspect a, int *width, int *height)
{
    if ((int)r < 0 || r >= VG_RES_COUNT)
        r = VG_RES_720P;
    if ((int)a < 0 || a >= VG_AR_COUNT)
        a = VG_AR_16_9;
    *width = frame_sizes[r][a][0];
    *height = frame_sizes[r][a][1];
}

/* ---- building from JSON ---------------------------------------------- */

static int config_error(vg_error *err, const char *model, const char *field,
                        const char *what)
{
    return vg_error_set(err, 0, "config_error", field,
                        "models: model \"%s\": \"%s\" %s", model, field, what);
}

static bool name_is_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
                  c == ':' || c == '/';
        if (!ok)
            return false;
    }
    return true;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        fputs("vidgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

/*
 * A JSON number in credits (or a factor) to thousandths, exactly.
 * Doubles cannot hold most decimals exactly, so rather than multiply by
 * 1000 and round (which would silently accept 0.0004), the value is printed
 * with three decimals and accepted only when that text reads back as the
 * very same double: i.e. the config said at most three decimals.
 */
static int json_to_thousandths(const json_t *v, int64_t *out)
{
    char text[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -1;
        snprintf(text, sizeof(text), "%lld", (long long)i);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0.0 && d < 1e15))
            return -1;
        snprintf(text, sizeof(text), "%.3f", d);
        if (strtod(text, NULL) != d)
            return -1;
    } else {
        return -1;
    }
    return vg_parse_credits(text, out);
}

static int check_keys(const json_t *obj, const char *const *allowed,
                      const char *model, vg_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return config_error(err, model, key,
                                "is not a model setting (a typo?)");
    }
    return 0;
}

static int parse_modalities(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of \"t2v\", \"i2v\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "modalities", what);
    json_array_foreach(v, i, item) {
        const char *s = json_string_value(item);
        if (s != NULL && strcmp(s, "t2v") == 0)
            m->t2v = true;
        else if (s != NULL && strcmp(s, "i2v") == 0)
            m->i2v = true;
        else
            return config_error(err, m->name, "modalities", what);
    }
    return 0;
}

static int parse_resolutions(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what =
        "must be a non-empty array of \"480P\", \"720P\", \"1080P\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "resolutions", what);
    json_array_foreach(v, i, item) {
        vg_resolution r;
        if (vg_resolution_parse(json_string_value(item), &r) != 0)
            return config_error(err, m->name, "resolutions", what);
        m->resolutions |= 1u << r;
    }
    return 0;
}

static int parse_aspects(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of \"16:9\", \"9:16\", "
                       "\"1:1\", \"4:3\", \"3:4\", \"21:9\"";
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "aspect_ratios", what);
    json_array_foreach(v, i, item) {
        vg_aspect a;
        if (vg_aspect_parse(json_string_value(item), &a) != 0)
            return config_error(err, m->name, "aspect_ratios", what);
        m->aspects |= 1u << a;
    }
    return 0;
}

static bool int_in_range(const json_t *v, int lo, int hi, int *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return false;
    *out = (int)i;
    return true;
}

#define DURATIONS_WHAT                                                        \
    "must be a non-empty array of whole seconds in 4..12 or {\"min\": 4, "    \
    "\"max\": 12}"

/* A set of durations, written as an array of whole seconds or as
 * {"min", "max"}; false when it is neither. */
static bool parse_duration_set(const json_t *v, uint32_t *out)
{
    int s;
    *out = 0;
    if (json_is_object(v)) {
        int lo, hi;
        if (json_object_size(v) != 2 ||
            !int_in_range(json_object_get(v, "min"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &lo) ||
            !int_in_range(json_object_get(v, "max"), VG_MIN_DURATION,
                          VG_MAX_DURATION, &hi) ||
            lo > hi)
            return false;
        for (s = lo; s <= hi; s++)
            *out |= UINT32_C(1) << s;
        return true;
    }
    size_t i;
    json_t *item;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    json_array_foreach(v, i, item) {
        if (!int_in_range(item, VG_MIN_DURATION, VG_MAX_DURATION, &s))
            return false;
        *out |= UINT32_C(1) << s;
    }
    return true;
}

static int parse_durations(const json_t *v, vg_model *m, vg_error *err)
{
    if (!parse_duration_set(v, &m->durations))
        return config_error(err, m->name, "durations", DURATIONS_WHAT);
    return 0;
}

/*
 * "durations_by_resolution": {"1080P": [8]}. Some models allow fewer
 * durations at one resolution (Veo makes 1080p only at 8 s, Hailuo only
 * at 6 s); each entry must be a subset of "durations", so the plain list
 * stays the union a client can read at a glance.
 */
static int parse_durations_by_resolution(const json_t *v, vg_model *m,
                                         vg_error *err)
{
    static const char field[] = "durations_by_resolution";
    const char *key;
    json_t *value;
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return config_error(err, m->name, field,
                            "must be an object such as {\"1080P\": [8]}");
    json_object_foreach((json_t *)v, key, value) {
        vg_resolution r;
        uint32_t set;
        if (vg_resolution_parse(key, &r) != 0 || !(m->resolutions & (1u << r)))
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s\" names "
                                "\"%s\", which is not one of the model's "
                                "\"resolutions\"",
                                m->name, field, key);
        if (m->durations_at[r] != 0)
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s\" gives %s "
                                "twice",
                                m->name, field, resolution_names[r]);
        if (!parse_duration_set(value, &set))
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s.%s\" %s", m->name,
                                field, key, DURATIONS_WHAT);
        if (set & ~m->durations)
            return vg_error_set(err, 0, "config_error", field,
                                "models: model \"%s\": \"%s.%s\" must "
                                "only list durations that \"durations\" "
                                "lists",
                                m->name, field, key);
        m->durations_at[r] = set;
    }
    return 0;
}

static int parse_fps(const json_t *v, vg_model *m, vg_error *err)
{
    const char *what = "must be a non-empty array of integers in 1..60";
    size_t i;
    json_t *item;
    int f;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return config_error(err, m->name, "fps", what);
    json_array_foreach(v, i, item) {
        if (!int_in_range(item, 1, VG_MAX_FPS, &f))
            return config_error(err, m->name, "fps", what);
        m->fps |= UINT64_C(1) << f;
    }
    return 0;
}

static int parse_price(const json_t *v, vg_model *m, vg_error *err)
{
    static const char *const allowed[] = {"per_second", "audio_factor",
                                          "flex_factor", "currency", NULL};
    if (!json_is_object(v))
        return config_error(err, m->name, "price",
                            "must be an object with \"per_second\"");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price\" has an "
                                "unknown key \"%s\"",
                                m->name, key);
    }

    /* Credits are the only currency; the key is accepted so that the
     * output of the models endpoint can be pasted back into a config. */
    json_t *currency = json_object_get(v, "currency");
    if (currency != NULL &&
        !(json_is_string(currency) &&
          strcmp(json_string_value(currency), "credits") == 0))
        return config_error(err, m->name, "price",
                            "currency must be \"credits\"");

    json_t *per = json_object_get(v, "per_second");
    if (!json_is_object(per))
        return config_error(err, m->name, "price",
                            "must have \"per_second\": {\"480P\": credits, "
                            "...}");
    bool given[VG_RES_COUNT] = {false};
    json_object_foreach(per, key, value) {
        vg_resolution r;
        if (vg_resolution_parse(key, &r) != 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.per_second\" "
                                "has an unknown resolution \"%s\"",
                                m->name, key);
        if (json_to_thousandths(value, &m->price_per_second[r]) != 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": price per second "
                                "for %s must be a non-negative number of "
                                "credits with at most 3 decimals",
                                m->name, resolution_names[r]);
        given[r] = true;
    }
    for (int r = 0; r < VG_RES_COUNT; r++) {
        if ((m->resolutions & (1u << r)) && !given[r])
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.per_second\" "
                                "has no price for %s, which the model lists",
                                m->name, resolution_names[r]);
    }

    static const char *const factors[] = {"audio_factor", "flex_factor"};
    int64_t *slots[] = {&m->audio_factor, &m->flex_factor};
    for (int i = 0; i < 2; i++) {
        json_t *f = json_object_get(v, factors[i]);
        *slots[i] = 1000;
        if (f == NULL)
            continue;
        if (json_to_thousandths(f, slots[i]) != 0 || *slots[i] == 0)
            return vg_error_set(err, 0, "config_error", "price",
                                "models: model \"%s\": \"price.%s\" must be "
                                "a positive number with at most 3 decimals",
                                m->name, factors[i]);
    }
    return 0;
}

/* ---- routes ----------------------------------------------------------- */

static int route_error(vg_error *err, const vg_model *m, size_t i,
                       const char *what)
{
    return vg_error_set(err, 0, "config_error", "providers",
                        "models: model \"%s\": \"providers[%zu]\" %s", m->name,
                        i, what);
}

static bool is_route_model_id(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 &&
           json_string_length(v) <= VG_ROUTE_MODEL_MAX;
}

/* One entry of "providers": {"provider", "model", "i2v_model"}. The route
 * is counted before it is filled, so a half-read route is freed too. */
static int parse_route(const json_t *item, size_t i, vg_model *m,
                       vg_error *err)
{
    static const char *const allowed[] = {"provider", "model", "i2v_model",
                                          NULL};
    char what[160];
    const char *key;
    json_t *value;
    if (!json_is_object(item))
        return route_error(err, m, i,
                           "must be an object such as {\"provider\": "
                           "\"novita\", \"model\": \"...\"}");
    json_object_foreach((json_t *)item, key, value) {
        bool known = false;
        for (size_t k = 0; allowed[k] != NULL; k++)
            if (strcmp(key, allowed[k]) == 0)
                known = true;
        if (!known) {
            snprintf(what, sizeof(what),
                     "has an unknown key \"%.60s\" (a route has only "
                     "provider, model, i2v_model)",
                     key);
            return route_error(err, m, i, what);
        }
    }
    vg_model_route *r = &m->routes[m->n_routes++];

    json_t *v = json_object_get(item, "provider");
    if (!json_is_string(v) ||
        !name_is_valid(json_string_value(v), VG_PROVIDER_NAME_MAX))
        return route_error(err, m, i,
                           "needs \"provider\": a provider name such as "
                           "\"novita\" (letters, digits, . _ - : /, at "
                           "most 63)");
    for (size_t k = 0; k + 1 < m->n_routes; k++) {
        if (strcmp(m->routes[k].provider, json_string_value(v)) == 0) {
            snprintf(what, sizeof(what),
                     "names the provider \"%s\" a second time",
                     json_string_value(v));
            return route_error(err, m, i, what);
        }
    }
    r->provider = xstrdup(json_string_value(v));

    v = json_object_get(item, "model");
    if (!is_route_model_id(v))
        return route_error(err, m, i,
                           "needs \"model\": the provider's model id, a "
                           "non-empty string of at most 255 bytes");
    r->model = xstrdup(json_string_value(v));

    v = json_object_get(item, "i2v_model");
    if (v != NULL && !is_route_model_id(v))
        return route_error(err, m, i,
                           "\"i2v_model\" must be a non-empty string of at "
                           "most 255 bytes");
    if (v != NULL)
        r->i2v_model = xstrdup(json_string_value(v));
    return 0;
}

/*
 * Who serves the model: either one "provider" (with an optional
 * "provider_model", the form older configs use) or a "providers" list of
 * routes in order of preference. Both forms end up as routes, and
 * m->provider / m->provider_model name the first one.
 */
static int parse_routes(const json_t *obj, vg_model *m, vg_error *err)
{
    json_t *one = json_object_get(obj, "provider");
    json_t *list = json_object_get(obj, "providers");
    json_t *pm = json_object_get(obj, "provider_model");
    size_t i;
    json_t *item;

    if (one != NULL && list != NULL)
        return config_error(err, m->name, "providers",
                            "cannot go with \"provider\": give either one "
                            "\"provider\" or a \"providers\" list");
    if (list == NULL) {
        if (!json_is_string(one) ||
            !name_is_valid(json_string_value(one), VG_PROVIDER_NAME_MAX))
            return config_error(err, m->name, "provider",
                                "must be a provider name such as "
                                "\"local\" (letters, digits, . _ - : /, "
                                "at most 63), or give a \"providers\" "
                                "list");
        if (pm != NULL && !is_route_model_id(pm))
            return config_error(err, m->name, "provider_model",
                                "must be a non-empty string of at most 255 "
                                "bytes");
        m->routes = calloc(1, sizeof(*m->routes));
        if (m->routes == NULL) {
            fputs("vidgate: out of memory\n", stderr);
            abort();
        }
        m->n_routes = 1;
        m->routes[0].provider = xstrdup(json_string_value(one));
        m->routes[0].model =
            xstrdup(pm != NULL ? json_string_value(pm) : m->name);
    } else {
        if (pm != NULL)
            return config_error(err, m->name, "provider_model",
                                "goes only with \"provider\"; with "
                                "\"providers\" each route names its own "
                                "\"model\"");
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > VG_MAX_ROUTES)
            return config_error(err, m->name, "providers",
                                "must be an array of 1 to 8 routes such as "
                                "{\"provider\": \"novita\", \"model\": "
                                "\"...\"}");
        m->routes = calloc(json_array_size(list), sizeof(*m->routes));
        if (m->routes == NULL) {
            fputs("vidgate: out of memory\n", stderr);
            abort();
        }
        json_array_foreach(list, i, item) {
            if (parse_route(item, i, m, err) != 0)
                return -1;
        }
    }
    m->provider = m->routes[0].provider;
    m->provider_model = m->routes[0].model;
    return 0;
}

/* An image-to-video id on a model that takes no images is a mistake in
 * the config: no job could ever use it. */
static int check_routes_fit(vg_model *m, vg_error *err)
{
    for (size_t i = 0; i < m->n_routes; i++)
        if (m->routes[i].i2v_model != NULL && !m->i2v)
            return route_error(err, m, i,
                               "has an \"i2v_model\", but the model's "
                               "\"modalities\" lack \"i2v\"");
    return 0;
}

static int parse_model(const json_t *obj, vg_model *m, vg_error *err)
{
    static const char *const allowed[] = {
        "name",           "description", "provider",
        "provider_model", "providers",   "modalities",
        "resolutions",    "durations",   "durations_by_resolution",
        "aspect_ratios",  "fps",         "audio",
        "price",          NULL};
    const char *name = m->name;
    if (check_keys(obj, allowed, name, err) != 0)
        return -1;

    json_t *v = json_object_get(obj, "description");
    if (v != NULL && !json_is_string(v))
        return config_error(err, name, "description", "must be a string");
    m->description = xstrdup(v != NULL ? json_string_value(v) : "");

    if (parse_routes(obj, m, err) != 0 ||
        parse_modalities(json_object_get(obj, "modalities"), m, err) != 0 ||
        check_routes_fit(m, err) != 0 ||
        parse_resolutions(json_object_get(obj, "resolutions"), m, err) != 0 ||
        parse_aspects(json_object_get(obj, "aspect_ratios"), m, err) != 0 ||
        parse_durations(json_object_get(obj, "durations"), m, err) != 0 ||
        parse_durations_by_resolution(
            json_object_get(obj, "durations_by_resolution"), m, err) != 0)
        return -1;

    /* A model that does not say otherwise renders at the contract's
     * default frame rate and without sound. */
    v = json_object_get(obj, "fps");
    if (v == NULL)
        m->fps = UINT64_C(1) << 24;
    else if (parse_fps(v, m, err) != 0)
        return -1;

    v = json_object_get(obj, "audio");
    if (v != NULL && !json_is_boolean(v))
        return config_error(err, name, "audio", "must be true or false");
    m->audio = json_is_true(v);

    return parse_price(json_object_get(obj, "price"), m, err);
}

static int check_alias_keys(const json_t *obj, const char *name, vg_error *err)
{
    static const char *const allowed[] = {"name", "alias_of", "description",
                                          "modality", NULL};
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                known = true;
        if (!known)
            return vg_error_set(err, 0, "config_error", key,
                                "models: alias \"%s\": \"%s\" is not "
                                "allowed in an alias (only name, alias_of, "
                                "modality, description)",
                                name, key);
    }
    json_t *d = json_object_get(obj, "description");
    if (d != NULL && !json_is_string(d))
        return vg_error_set(err, 0, "config_error", "description",
                            "models: alias \"%s\": \"description\" must be "
                            "a string",
                            name);
    return 0;
}

/* An alias's "modality": absent (the target's), "t2v" or "i2v", and one
 * the target has. */
static int parse_alias_modality(const json_t *obj, const char *name,
                                const vg_model *target, vg_modality *out,
                                vg_error *err)
{
    json_t *v = json_object_get(obj, "modality");
    *out = VG_MODALITY_ANY;
    if (v == NULL)
        return 0;
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "t2v") == 0)
        *out = VG_MODALITY_T2V;
    else if (s != NULL && strcmp(s, "i2v") == 0)
        *out = VG_MODALITY_I2V;
    else
        return vg_error_set(err, 0, "config_error", "modality",
                            "models: alias \"%s\": \"modality\" must be "
                            "\"t2v\" or \"i2v\"",
                            name);
    if ((*out == VG_MODALITY_T2V && !target->t2v) ||
        (*out == VG_MODALITY_I2V && !target->i2v))
        return vg_error_set(err, 0, "config_error", "modality",
                            "models: alias \"%s\": \"%s\" does not offer "
                            "\"%s\"",
                            name, target->name, s);
    return 0;
}

/* True when `name` is already taken by one of the first n entries. */
static bool name_taken(json_t *models, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        json_t *other = json_object_get(json_array_get(models, i), "name");
        if (strcmp(json_string_value(other), name) == 0)
            return true;
    }
    return false;
}

/* Checks the names of every entry and counts models and aliases. */
static int count_entries(json_t *models, size_t *n_models, size_t *n_aliases,
                         vg_error *err)
{
    size_t i;
    json_t *item;
    *n_models = 0;
    *n_aliases = 0;
    if (!json_is_array(models) || json_array_size(models) == 0)
        return vg_error_set(err, 0, "config_error", "models",
                            "\"models\" must be a non-empty array of model "
                            "objects");
    json_array_foreach(models, i, item) {
        json_t *name = json_object_get(item, "name");
        if (!json_is_object(item))
            return vg_error_set(err, 0, "config_error", "models",
                                "models[%zu] must be an object", i);
        if (!json_is_string(name) ||
            !name_is_valid(json_string_value(name), VG_MODEL_NAME_MAX))
            return vg_error_set(err, 0, "config_error", "name",
                                "models[%zu]: \"name\" must be a model name "
                                "(letters, digits, . _ - : /, at most 127)",
                                i);
        if (name_taken(models, i, json_string_value(name)))
            return vg_error_set(err, 0, "config_error", "name",
                                "models: the name \"%s\" is used twice",
                                json_string_value(name));
        if (json_object_get(item, "alias_of") != NULL)
            (*n_aliases)++;
        else
            (*n_models)++;
    }
    if (*n_models == 0)
        return vg_error_set(err, 0, "config_error", "models",
                            "\"models\" has only aliases; at least one real "
                            "model is needed");
    return 0;
}

vg_catalog *vg_catalog_from_json(json_t *models, vg_error *err)
{
    /* Counting first lets the arrays be allocated once, so the model
     * pointers that aliases and requests hold never move. */
    size_t n_models, n_aliases, i;
    json_t *item;
    if (count_entries(models, &n_models, &n_aliases, err) != 0)
        return NULL;

    vg_catalog *c = calloc(1, sizeof(*c));
    vg_model *ms = calloc(n_models, sizeof(*ms));
    vg_alias *as = calloc(n_aliases ? n_aliases : 1, sizeof(*as));
    if (c == NULL || ms == NULL || as == NULL) {
        fputs("vidgate: out of memory\n", stderr);
        abort();
    }
    c->models = ms;
    c->aliases = as;

    json_array_foreach(models, i, item) {
        if (json_object_get(item, "alias_of") != NULL)
            continue;
        vg_model *m = &c->models[c->n_models++];
        m->name = xstrdup(json_string_value(json_object_get(item, "name")));
        if (parse_model(item, m, err) != 0)
            goto fail;
    }

    /* Second pass: aliases, now that every model they may name exists.
     * An alias must name a real model, not another alias, which rules out
     * chains and loops in one check. */
    json_array_foreach(models, i, item) {
        json_t *of = json_object_get(item, "alias_of");
        if (of == NULL)
            continue;
        const char *name = json_string_value(json_object_get(item, "name"));
        if (check_alias_keys(item, name, err) != 0)
            goto fail;
        if (!json_is_string(of)) {
            vg_error_set(err, 0, "config_error", "alias_of",
                         "models: alias \"%s\": \"alias_of\" must be the "
                         "name of a model",
                         name);
            goto fail;
        }
        const char *target = json_string_value(of);
        const vg_model *m = NULL;
        for (size_t k = 0; k < c->n_models; k++)
            if (strcmp(c->models[k].name, target) == 0)
                m = &c->models[k];
        if (m == NULL) {
            bool is_alias = false;
            json_t *other;
            size_t k;
            json_array_foreach(models, k, other) {
                const char *n =
                    json_string_value(json_object_get(other, "name"));
                if (strcmp(n, target) == 0)
                    is_alias = true;
            }
            vg_error_set(err, 0, "config_error", "alias_of",
                         is_alias
                             ? "models: alias \"%s\": \"alias_of\" names "
                               "\"%s\", which is itself an alias; point it "
                               "at the model directly"
                             : "models: alias \"%s\": \"alias_of\" names "
                               "\"%s\", which is not a model in the catalog",
                         name, target);
            goto fail;
        }
        vg_modality modality;
        if (parse_alias_modality(item, name, m, &modality, err) != 0)
            goto fail;
        vg_alias *a = &c->aliases[c->n_aliases++];
        a->name = xstrdup(name);
        a->target = m;
        a->modality = modality;
    }
    return c;

fail:
    vg_catalog_free(c);
    return NULL;
}

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

void vg_catalog_free(vg_catalog *catalog)
{
    if (catalog == NULL)
        return;
    for (size_t i = 0; i < catalog->n_models; i++) {
        vg_model *m = &catalog->models[i];
        free(m->name);
        free(m->description);
        /* m->provider and m->provider_model point into routes[0]. */
        for (size_t k = 0; k < m->n_routes; k++) {
            free(m->routes[k].provider);
            free(m->routes[k].model);
            free(m->routes[k].i2v_model);
        }
        free(m->routes);
    }
    for (size_t i = 0; i < catalog->n_aliases; i++)
        free(catalog->aliases[i].name);
    free(catalog->models);
    free(catalog->aliases);
    free(catalog);
}

const vg_model *vg_catalog_lookup(const vg_catalog *catalog, const char *name,
                                  vg_modality *modality)
{
    *modality = VG_MODALITY_ANY;
    if (catalog == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < catalog->n_models; i++)
        if (strcmp(catalog->models[i].name, name) == 0)
            return &catalog->models[i];
    for (size_t i = 0; i < catalog->n_aliases; i++) {
        if (strcmp(catalog->aliases[i].name, name) == 0) {
            *modality = catalog->aliases[i].modality;
            return catalog->aliases[i].target;
        }
    }
    return NULL;
}

const vg_model *vg_catalog_find(const vg_catalog *catalog, const char *name)
{
    vg_modality ignored;
    return vg_catalog_lookup(catalog, name, &ignored);
}

void vg_catalog_set_availability(vg_catalog *catalog,
                                 vg_model_available_fn available, void *ctx)
{
    catalog->available = available;
    catalog->available_ctx = ctx;
}

bool vg_catalog_model_available(const vg_catalog *catalog,
                                const vg_model *model)
{
    return catalog->available == NULL ||
           catalog->available(catalog->available_ctx, model);
}

uint32_t vg_model_durations_at(const vg_model *model, vg_resolution r)
{
    if ((int)r < 0 || r >= VG_RES_COUNT || model->durations_at[r] == 0)
        return model->durations;
    return model->durations_at[r];
}

const char *vg_route_model_id(const vg_model_route *route, bool has_images)
{
    if (has_images && route->i2v_model != NULL)
        return route->i2v_model;
    return route->model;
}
