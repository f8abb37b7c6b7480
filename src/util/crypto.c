/*
 * crypto.c - thin wrappers over libcrypto; see crypto.h.
 */
#include "util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vg_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

uint64_t vg_random_u64(void)
{
    uint64_t v = 0;
    if (vg_random_bytes(&v, sizeof(v)) != 0)
        abort(); /* no entropy: nothing safe can be done */
    return v;
}

void vg_hex_encode(const void *data, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void vg_sha256_hex(const char *s, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), digest);
    vg_hex_encode(digest, sizeof(digest), out);
}

void vg_hmac_sha256_hex(const void *key, size_t key_len, const void *msg,
                        size_t msg_len, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, digest, &len);
    vg_hex_encode(digest, len, out);
}

bool vg_secure_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

void vg_uuid_v4(char out[37])
{
    unsigned char b[16];
    if (vg_random_bytes(b, sizeof(b)) != 0)
        abort();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
}

void vg_new_api_key(char out[48])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char b[43];
    if (vg_random_bytes(b, sizeof(b)) != 0)
        abort();
    memcpy(out, "vg_", 3);
    for (size_t i = 0; i < sizeof(b); i++)
        out[3 + i] = alphabet[b[i] & 63];
    out[46] = '\0';
}
