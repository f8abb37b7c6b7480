/*
 * body.h - reading a request body (server.c's helper, not for handlers).
 *
 * A route says what body it takes (vg_body_kind); the body reader takes
 * exactly that and refuses the rest before reading further: the media
 * type, the declared length, the number of form parts, repeated fields,
 * NUL bytes, file parts where none belong. Work and memory stay linear in
 * the body's size: field values are appended once, looked up by hash.
 */
#ifndef VG_HTTP_BODY_H
#define VG_HTTP_BODY_H

#include "http/http.h"

/* The most bytes a VG_BODY_SMALL or VG_BODY_NONE route reads. */
#define VG_SMALL_BODY_BYTES 4096

/* Records the first reason a body is refused; later ones are dropped. */
void vg_body_fail(vg_http_request *req, int status, const char *code,
                  const char *field, const char *message);
/* Checks the headers before any byte of the body is read; 0 to go on,
 * or -1 with req->body_error filled. */
int vg_body_prepare(vg_http_request *req);
/* Takes the next bytes of the body (ignored once the body has failed). */
void vg_body_feed(vg_http_request *req, const char *data, size_t size);
/* The body is complete: parses JSON, ends the form. */
void vg_body_finish(vg_http_request *req);
/* Frees whatever the body holds and deletes its uploads. */
void vg_body_release(vg_http_request *req);

/* Content-Length, or -1 when absent or unreadable (chunked). */
int64_t vg_body_declared_length(vg_http_request *req);

/* Exposed for tests: whether a Content-Type names media type `type`
 * exactly (parameters after ';' allowed), and a multipart boundary. */
bool vg_media_type_is(const char *content_type, const char *type);
int vg_multipart_boundary(const char *content_type, char *out,
                          size_t out_size);

#endif
