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
/* HMAC-SHA256 of msg under key, as 64 hex chars + NUL. */
void vg_hmac_sha256_hex(const void *key, size_t key_len, const void *msg,
                        size_t msg_len, char out[65]);
/* Constant-time comparison of two NUL-terminated strings. */
bool vg_secure_equal(const char *a, const char *b);
/* A random (version 4) UUID, 36 chars + NUL. */
void vg_uuid_v4(char out[37]);
/* A fresh API key: "vg_" + 43 base64url chars (256 bits), NUL-terminated. */
void vg_new_api_key(char out[48]);

#endif
