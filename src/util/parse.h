/*
 * parse.h - strict parsers for values that arrive as text (form fields,
 * query strings, CLI arguments). "5" is 5; "5x", " 5", "" and "05.0" are
 * refused, so a typo never silently becomes a different request.
 */
#ifndef VG_PARSE_H
#define VG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal integer with optional leading '-'; 0 on success. */
int vg_parse_int64(const char *s, int64_t *out);
/* "true" or "false", any letter case; 0 on success. */
int vg_parse_bool(const char *s, bool *out);
/* Credits as a decimal with at most 3 fraction digits ("12", "0.5",
 * "1.125"), into thousandths of a credit; 0 on success. Negative refused. */
int vg_parse_credits(const char *s, int64_t *millicredits);
/* Thousandths of a credit as a JSON-friendly double (12500 -> 12.5). */
double vg_credits_to_double(int64_t millicredits);
/* True when the bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool vg_utf8_valid(const char *s, size_t len);
/* Number of code points in valid UTF-8. */
size_t vg_utf8_length(const char *s, size_t len);
/* Tokens a prompt counts as when nobody measured them: like an LLM's,
 * about four characters a token, at least 1. */
int64_t vg_estimate_tokens(const char *text);

/* What a client prefers (RFC 7240 "Prefer" header values). */
typedef struct vg_prefer {
    bool respond_async; /* respond-async */
    int wait_s;         /* wait=N seconds; -1 when not given */
} vg_prefer;
/* Reads one Prefer header value (several may be joined with commas) into
 * *out, which the caller initialises ({false, -1}). Unknown preferences
 * and malformed ones are ignored, as the RFC asks. */
void vg_parse_prefer(const char *value, vg_prefer *out);

#endif
