/*
 * parse.c - strict text parsers; see parse.h.
 */
#include "util/parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int vg_parse_int64(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '\0')
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int vg_parse_bool(const char *s, bool *out)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

int vg_parse_credits(const char *s, int64_t *millicredits)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    int64_t whole = 0, frac = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > (INT64_MAX / 1000 - 9) / 10)
            return -1;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        p++;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++digits > 3)
                return -1;
            frac = frac * 10 + (*p - '0');
        }
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (*p != '\0')
        return -1;
    *millicredits = whole * 1000 + frac;
    return 0;
}

double vg_credits_to_double(int64_t millicredits)
{
    return (double)millicredits / 1000.0;
}

bool vg_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
            (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

size_t vg_utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

/* One "token[=value]" of a Prefer header, without its parameters. */
static void prefer_one(const char *p, size_t len, vg_prefer *out)
{
    while (len > 0 && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - p) : len;
    while (name_len > 0 && p[name_len - 1] == ' ')
        name_len--;
    if (eq == NULL) {
        if (name_len == 13 && strncasecmp(p, "respond-async", 13) == 0)
            out->respond_async = true;
        return;
    }
    if (name_len != 4 || strncasecmp(p, "wait", 4) != 0)
        return;
    const char *v = eq + 1;
    size_t vlen = len - (size_t)(v - p);
    while (vlen > 0 && *v == ' ')
        v++, vlen--;
    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
        v++, vlen -= 2;
    char digits[16];
    int64_t n;
    if (vlen == 0 || vlen >= sizeof(digits))
        return;
    memcpy(digits, v, vlen);
    digits[vlen] = '\0';
    if (vg_parse_int64(digits, &n) == 0 && n >= 0)
        out->wait_s = n > 86400 ? 86400 : (int)n;
}

void vg_parse_prefer(const char *value, vg_prefer *out)
{
    if (value == NULL)
        return;
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        /* Parameters (";...") refine a preference; none are used here. */
        const char *semi = memchr(p, ';', len);
        prefer_one(p, semi != NULL ? (size_t)(semi - p) : len, out);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
}

int64_t vg_estimate_tokens(const char *text)
{
    int64_t chars = (int64_t)vg_utf8_length(text, strlen(text));
    int64_t tokens = (chars + 3) / 4;
    return tokens > 0 ? tokens : 1;
}
