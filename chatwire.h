/*
 * chatwire: the wire format of the chat protocol (PROTOCOL.md sections 1-3), in C.
 *
 * Pure code: no I/O, no allocation, no global state.  The client uses it, the tests
 * check it against vectors/frames.txt, and a fuzzer may drive wire_decode() directly.
 */
#ifndef CHATWIRE_H
#define CHATWIRE_H

#include <stddef.h>
#include <stdint.h>

/* W-1, W-4: a 3-byte header (type, u16 length) and at most 2000 payload bytes. */
#define WIRE_HEADER_LEN 3
#define WIRE_MAX_PAYLOAD 2000
#define WIRE_MAX_FRAME (WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD)

/* W-3: the frame type bytes. */
#define WIRE_HELLO 'H'
#define WIRE_MESSAGE 'M'
#define WIRE_QUIT 'Q'
#define WIRE_ERROR 'E'

/* W-3: payload length limits in bytes, per type (inclusive). */
#define WIRE_HELLO_MIN 0
#define WIRE_HELLO_MAX 40
#define WIRE_MESSAGE_MIN 0
#define WIRE_MESSAGE_MAX 2000
#define WIRE_QUIT_MIN 0
#define WIRE_QUIT_MAX 0
#define WIRE_ERROR_MIN 1
#define WIRE_ERROR_MAX 201
#define WIRE_REASON_MAX 200 /* W-6: the reason after the code byte */

/* T-1, T-3: text limits in code points. */
#define WIRE_HANDLE_MAX_CHARS 10
#define WIRE_MESSAGE_MAX_CHARS 500

/* E-1: error codes. */
#define WIRE_BUSY 1
#define WIRE_MALFORMED 2
#define WIRE_UNEXPECTED 3
#define WIRE_BAD_HANDLE 4
#define WIRE_TIMEOUT 5

/* Bits of the decoder's allowed-types mask (E-3 step 3).  ERROR has no bit: an ERROR frame
 * is only checked for steps 1-2, so it is never UNEXPECTED. */
#define WIRE_ALLOW_HELLO 0x1u
#define WIRE_ALLOW_MESSAGE 0x2u
#define WIRE_ALLOW_QUIT 0x4u
#define WIRE_ALLOW_ALL (WIRE_ALLOW_HELLO | WIRE_ALLOW_MESSAGE | WIRE_ALLOW_QUIT)

/* The longest reason the decoder produces, with its NUL; always ASCII (E-4). */
#define WIRE_REASON_BUF 96

/* "BUSY", "MALFORMED", "UNEXPECTED", "BAD_HANDLE", "TIMEOUT", else "UNKNOWN". */
const char *wire_code_name(unsigned code);

/* "HELLO", "MESSAGE", "QUIT", "ERROR", or NULL for an unknown type byte. */
const char *wire_type_name(unsigned char type);

/* The WIRE_ALLOW_* bit of a type, 0 for ERROR and unknown types. */
unsigned wire_type_bit(unsigned char type);

/* Writes the frame (type, payload[0..len)) to out and returns its size, or 0 if it does not
 * fit in cap or len exceeds 65535.  Limits of W-3 are the caller's business. */
size_t wire_encode(unsigned char *out, size_t cap, unsigned char type,
                   const unsigned char *payload, size_t len);

/* ---- UTF-8 and the text rules (T-1..T-4) ---- */

/* Decodes one code point of s[*i..len).  On success stores it in *cp, advances *i past it and
 * returns 1.  On an invalid sequence advances *i past its maximal invalid subpart (Unicode's
 * "substitution of maximal subparts", which is what Python's errors="replace" does) and
 * returns 0.  Requires *i < len. */
int wire_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp);

/* 1 if s[0..len) is valid UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF), and then
 * *count (if not NULL) is its number of code points; else 0. */
int wire_utf8_valid(const unsigned char *s, size_t len, size_t *count);

/* Incremental UTF-8 validity, one byte at a time, for input too long to keep (the client's
 * discarded over-long lines).  Zero-initialise, feed bytes, then ask wire_utf8_stream_ok(). */
struct wire_utf8_stream {
    unsigned need;           /* continuation bytes still expected */
    unsigned char lo, hi;    /* allowed range of the next continuation byte */
    int bad;                 /* an invalid sequence was seen */
};
void wire_utf8_stream_byte(struct wire_utf8_stream *u, unsigned char b);
int wire_utf8_stream_ok(const struct wire_utf8_stream *u); /* valid and not cut off */

int wire_is_control(uint32_t cp);    /* T-2: U+0000-001F, U+007F-009F */
int wire_is_whitespace(uint32_t cp); /* exactly Python's str.isspace() */
int wire_is_invisible(uint32_t cp);  /* T-6: Unicode's default-ignorable code points */
int wire_is_override(uint32_t cp);   /* T-6: bidi embeddings, overrides and isolates */

/* NULL if the bytes are a valid handle (T-1) / message (T-3), else the first broken rule as
 * a phrase that completes "it ...": "is not valid UTF-8", "is empty", "is longer than 10
 * characters" / "is longer than 500 characters", "contains control characters", and for
 * handles "contains invisible characters", "contains whitespace", "contains '>'", for
 * messages "contains direction overrides" - checked in that order (T-5, T-6). */
const char *wire_handle_problem(const unsigned char *s, size_t len);
const char *wire_message_problem(const unsigned char *s, size_t len);

/* Writes s[0..len) to out as a NUL-terminated string with each control character, each
 * direction override (T-6) and each invalid UTF-8 sequence replaced by '?' (W-6, S-13).  Truncates at a code point boundary if
 * cap is too small; cap >= len + 1 always suffices.  Returns the length written. */
size_t wire_sanitize(const unsigned char *s, size_t len, char *out, size_t cap);

/* ---- the incremental decoder (W-4, W-5, E-3) ---- */

enum wire_status {
    WIRE_NEED_MORE, /* all input consumed, no frame complete yet */
    WIRE_FRAME,     /* a frame is complete: type, len, payload */
    WIRE_FAILED     /* the input breaks the protocol: code, reason; sticky */
};

struct wire_decoder {
    /* set by the caller (wire_decoder_init, then freely between calls) */
    unsigned allowed;                  /* WIRE_ALLOW_* bits, for E-3 step 3 */

    /* results, valid after the call that returned them until the next call */
    unsigned char type;                /* WIRE_FRAME, WIRE_FAILED: the frame's type byte */
    size_t len;                        /* WIRE_FRAME: payload length */
    const unsigned char *payload;      /* WIRE_FRAME: points into buf */
    unsigned code;                     /* WIRE_FAILED: WIRE_MALFORMED, _UNEXPECTED, _BAD_HANDLE */
    char reason[WIRE_REASON_BUF];      /* WIRE_FAILED: short ASCII sentence (E-4) */

    /* private */
    unsigned char buf[WIRE_MAX_FRAME]; /* one frame, never more (W-5) */
    size_t have;                       /* bytes of the current frame in buf */
    size_t want;                       /* its total size, known once the header is in */
    int done;                          /* the last call returned a frame: start afresh */
    int failed;
};

void wire_decoder_init(struct wire_decoder *d, unsigned allowed);

/* Feeds in[0..n).  Consumes bytes up to the end of the first frame completed or rejected, or
 * all of them, and stores that count in *used; the caller feeds the rest in a later call,
 * after adjusting d->allowed to the state the frame leads to.
 *
 * Checks are made in E-3 order: type, length and (except for ERROR) d->allowed as soon as
 * the 3 header bytes are in, without waiting for the payload; UTF-8 and the text rules of
 * HELLO and MESSAGE once the payload is complete.  Once WIRE_FAILED has been returned, every
 * later call returns it again and consumes nothing.  UNEXPECTED comes with a generic reason;
 * callers that know the state may phrase their own. */
enum wire_status wire_decode(struct wire_decoder *d, const unsigned char *in, size_t n,
                             size_t *used);

#endif
