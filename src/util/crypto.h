/*
 * crypto.h - the few primitives vidgate needs, on top of OpenSSL's libcrypto:
 * random bytes, SHA-256, HMAC-SHA256, hex, base64url and UUIDs.
 */
#ifndef VG_CRYPTO_H
#define VG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Cryptographically secure random bytes; returns 0 on success. */
int vg_random_bytes(void *buf, size_t n);
uint64_t vg_random_u64(void);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void vg_hex_encode(const void *data, size_t n, char *out);
/* SHA-256 of a string as 64 hex chars + NUL. */
void vg_sha256_hex(const char *s, char out[65]);
/* SHA-256 of a file's contents as 64 hex chars + NUL; 0 on success. */
int vg_sha256_file_hex(const char *path, char out[65]);
/* HMAC-SHA256 of msg under key, as 64 hex chars + NUL. */
void vg_hmac_sha256_hex(const void *key, size_t key_len, const void *msg,
                        size_t msg_len, char out[65]);
/* Constant-time comparison of two NUL-terminated strings. */
bool vg_secure_equal(const char *a, const char *b);
/* Decodes base64 (standard or URL-safe alphabet) into out, which holds
 * cap bytes. Whitespace is skipped (encoders that wrap lines at 76
 * columns are common); padding is optional but, when present, must be
 * correct and last. Returns 0 with *out_len set, or -1 for bad input or
 * a result larger than cap. */
int vg_base64_decode(const char *in, size_t len, unsigned char *out,
                     size_t cap, size_t *out_len);
/* A random (version 4) UUID, 36 chars + NUL. */
void vg_uuid_v4(char out[37]);
/* A time-ordered (version 7, RFC 9562) UUID: 48 bits of Unix ms, then 74
 * random bits. Rows keyed by these land at the end of their indexes
 * instead of on random pages. */
void vg_uuid_v7(char out[37]);
/* A fresh API key: "vg_" + 43 base64url chars (256 bits), NUL-terminated. */
void vg_new_api_key(char out[48]);

#endif
