/* chatwire: frames, text rules and the incremental decoder.  See chatwire.h. */
#include "chatwire.h"

#include <stdio.h>
#include <string.h>

const char *
wire_code_name(unsigned code)
{
    switch (code) {
    case WIRE_BUSY:       return "BUSY";
    case WIRE_MALFORMED:  return "MALFORMED";
    case WIRE_UNEXPECTED: return "UNEXPECTED";
    case WIRE_BAD_HANDLE: return "BAD_HANDLE";
    case WIRE_TIMEOUT:    return "TIMEOUT";
    default:              return "UNKNOWN";
    }
}

const char *
wire_type_name(unsigned char type)
{
    switch (type) {
    case WIRE_HELLO:   return "HELLO";
    case WIRE_MESSAGE: return "MESSAGE";
    case WIRE_QUIT:    return "QUIT";
    case WIRE_ERROR:   return "ERROR";
    default:           return NULL;
    }
}

unsigned
wire_type_bit(unsigned char type)
{
    switch (type) {
    case WIRE_HELLO:   return WIRE_ALLOW_HELLO;
    case WIRE_MESSAGE: return WIRE_ALLOW_MESSAGE;
    case WIRE_QUIT:    return WIRE_ALLOW_QUIT;
    default:           return 0;
    }
}

size_t
wire_encode(unsigned char *out, size_t cap, unsigned char type,
            const unsigned char *payload, size_t len)
{
    if (len > 0xFFFF || cap < WIRE_HEADER_LEN || len > cap - WIRE_HEADER_LEN)
        return 0;
    out[0] = type;
    out[1] = (unsigned char)(len >> 8);
    out[2] = (unsigned char)(len & 0xFF);
    if (len > 0)
        memcpy(out + WIRE_HEADER_LEN, payload, len);
    return WIRE_HEADER_LEN + len;
}

/* ---- UTF-8 ---- */

/* RFC 3629 table 3-7 in code: for a lead byte, how many continuation bytes follow and the
 * range allowed for the first of them.  The narrowed ranges are what exclude overlongs
 * (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).  Returns -1 for a byte that
 * cannot start a sequence. */
static int
utf8_lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80)
        return 0;
    if (b < 0xC2)
        return -1;
    if (b < 0xE0)
        return 1;
    if (b == 0xE0)
        *lo = 0xA0;
    else if (b == 0xED)
        *hi = 0x9F;
    if (b < 0xF0)
        return 2;
    if (b == 0xF0)
        *lo = 0x90;
    else if (b == 0xF4)
        *hi = 0x8F;
    if (b < 0xF5)
        return 3;
    return -1;
}

int
wire_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char lo, hi, b = s[*i];
    int n = utf8_lead(b, &lo, &hi);
    uint32_t v;

    (*i)++;
    if (n < 0)
        return 0;
    v = n == 0 ? b : n == 1 ? (b & 0x1Fu) : n == 2 ? (b & 0x0Fu) : (b & 0x07u);
    for (; n > 0; n--) {
        /* A bad continuation byte is not consumed: it may start the next sequence. */
        if (*i >= len || s[*i] < lo || s[*i] > hi)
            return 0;
        v = (v << 6) | (s[*i] & 0x3Fu);
        (*i)++;
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return 1;
}

int
wire_utf8_valid(const unsigned char *s, size_t len, size_t *count)
{
    size_t i = 0, n = 0;
    uint32_t cp;

    while (i < len) {
        if (!wire_utf8_next(s, len, &i, &cp))
            return 0;
        n++;
    }
    if (count)
        *count = n;
    return 1;
}

void
wire_utf8_stream_byte(struct wire_utf8_stream *u, unsigned char b)
{
    int n;

    if (u->bad)
        return;
    if (u->need > 0) {
        if (b < u->lo || b > u->hi)
            u->bad = 1;
        u->need--;
        u->lo = 0x80;
        u->hi = 0xBF;
        return;
    }
    n = utf8_lead(b, &u->lo, &u->hi);
    if (n < 0)
        u->bad = 1;
    else
        u->need = (unsigned)n;
}

int
wire_utf8_stream_ok(const struct wire_utf8_stream *u)
{
    return !u->bad && u->need == 0;
}

int
wire_is_control(uint32_t cp)
{
    return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F);
}

int
wire_is_whitespace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int
wire_is_invisible(uint32_t cp)
{
    return cp == 0xAD || cp == 0x34F || cp == 0x61C || cp == 0x115F || cp == 0x1160 || cp == 0x17B4 ||
           cp == 0x17B5 || (cp >= 0x180B && cp <= 0x180F) || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0x3164 ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || cp == 0xFFA0 || (cp >= 0xFFF0 && cp <= 0xFFF8) ||
           (cp >= 0x1BCA0 && cp <= 0x1BCA3) || (cp >= 0x1D173 && cp <= 0x1D17A) ||
           (cp >= 0xE0000 && cp <= 0xE0FFF);
}

int
wire_is_override(uint32_t cp)
{
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The checks shared by handles and messages, in the order of chatwire.h. */
static const char *
text_problem(const unsigned char *s, size_t len, size_t max_chars, const char *too_long)
{
    size_t i = 0, count = 0;
    uint32_t cp;
    int control = 0;

    while (i < len) {
        if (!wire_utf8_next(s, len, &i, &cp))
            return "is not valid UTF-8";
        count++;
        control |= wire_is_control(cp);
    }
    if (count == 0)
        return "is empty";
    if (count > max_chars)
        return too_long;
    if (control)
        return "contains control characters";
    return NULL;
}

/* Whether some code point of s (valid UTF-8 by now) satisfies pred. */
static int
any_char(const unsigned char *s, size_t len, int (*pred)(uint32_t))
{
    size_t i = 0;
    uint32_t cp;

    while (i < len && wire_utf8_next(s, len, &i, &cp))
        if (pred(cp))
            return 1;
    return 0;
}

static int
is_gt(uint32_t cp)
{
    return cp == '>';
}

const char *
wire_handle_problem(const unsigned char *s, size_t len)
{
    const char *p = text_problem(s, len, WIRE_HANDLE_MAX_CHARS, "is longer than 10 characters");

    if (p)
        return p;
    if (any_char(s, len, wire_is_invisible))
        return "contains invisible characters";
    if (any_char(s, len, wire_is_whitespace))
        return "contains whitespace";
    if (any_char(s, len, is_gt))
        return "contains '>'";
    return NULL;
}

const char *
wire_message_problem(const unsigned char *s, size_t len)
{
    const char *p = text_problem(s, len, WIRE_MESSAGE_MAX_CHARS, "is longer than 500 characters");

    if (p)
        return p;
    if (any_char(s, len, wire_is_override))
        return "contains direction overrides";
    return NULL;
}

size_t
wire_sanitize(const unsigned char *s, size_t len, char *out, size_t cap)
{
    size_t i = 0, o = 0, start;
    uint32_t cp;

    if (cap == 0)
        return 0;
    while (i < len) {
        start = i;
        /* An override would reverse what follows it on the screen (S-13, T-6). */
        if (wire_utf8_next(s, len, &i, &cp) && !wire_is_control(cp) && !wire_is_override(cp)) {
            if (i - start > cap - 1 - o)
                break;
            memcpy(out + o, s + start, i - start);
            o += i - start;
        } else {
            if (o >= cap - 1)
                break;
            out[o++] = '?';
        }
    }
    out[o] = '\0';
    return o;
}

/* ---- the decoder ---- */

void
wire_decoder_init(struct wire_decoder *d, unsigned allowed)
{
    memset(d, 0, sizeof *d);
    d->allowed = allowed;
}

static enum wire_status
fail(struct wire_decoder *d, unsigned code, const char *reason)
{
    d->failed = 1;
    d->code = code;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    return WIRE_FAILED;
}

/* E-3 steps 1-3, on the 3 header bytes in buf.  Sets d->want on success. */
static enum wire_status
check_header(struct wire_decoder *d)
{
    unsigned char type = d->buf[0];
    size_t len = ((size_t)d->buf[1] << 8) | d->buf[2], min, max;
    const char *name = wire_type_name(type);
    char why[WIRE_REASON_BUF];

    d->type = type; /* so that a caller can name the frame it rejects */
    switch (type) {
    case WIRE_HELLO:   min = WIRE_HELLO_MIN;   max = WIRE_HELLO_MAX;   break;
    case WIRE_MESSAGE: min = WIRE_MESSAGE_MIN; max = WIRE_MESSAGE_MAX; break;
    case WIRE_QUIT:    min = WIRE_QUIT_MIN;    max = WIRE_QUIT_MAX;    break;
    case WIRE_ERROR:   min = WIRE_ERROR_MIN;   max = WIRE_ERROR_MAX;   break;
    default:
        snprintf(why, sizeof why, "unknown frame type 0x%02x", (unsigned)type);
        return fail(d, WIRE_MALFORMED, why);
    }
    if (len > max) {
        snprintf(why, sizeof why, "declared length %zu exceeds %zu for %s", len, max, name);
        return fail(d, WIRE_MALFORMED, why);
    }
    if (len < min) {
        snprintf(why, sizeof why, "declared length %zu is below %zu for %s", len, min, name);
        return fail(d, WIRE_MALFORMED, why);
    }
    /* ERROR is accepted in every state (E-3): only steps 1-2 apply to it. */
    if (type != WIRE_ERROR && !(d->allowed & wire_type_bit(type))) {
        snprintf(why, sizeof why, "unexpected %s", name);
        return fail(d, WIRE_UNEXPECTED, why);
    }
    d->want = WIRE_HEADER_LEN + len;
    return WIRE_NEED_MORE;
}

/* E-3 steps 4-5, on the complete frame in buf. */
static enum wire_status
check_payload(struct wire_decoder *d)
{
    const unsigned char *p = d->buf + WIRE_HEADER_LEN;
    size_t len = d->want - WIRE_HEADER_LEN;
    const char *problem;
    char why[WIRE_REASON_BUF];

    if (d->buf[0] == WIRE_HELLO && (problem = wire_handle_problem(p, len)) != NULL) {
        snprintf(why, sizeof why, "handle %s", problem);
        /* T-1: only a well-formed (valid UTF-8) HELLO gets BAD_HANDLE. */
        return fail(d, wire_utf8_valid(p, len, NULL) ? WIRE_BAD_HANDLE : WIRE_MALFORMED, why);
    }
    if (d->buf[0] == WIRE_MESSAGE && (problem = wire_message_problem(p, len)) != NULL) {
        snprintf(why, sizeof why, "message %s", problem);
        return fail(d, WIRE_MALFORMED, why);
    }
    d->type = d->buf[0];
    d->len = len;
    d->payload = p;
    d->done = 1;
    return WIRE_FRAME;
}

/* Moves up to `want` bytes (fewer if the input runs out) from in into the frame buffer. */
static void
take(struct wire_decoder *d, size_t want, const unsigned char *in, size_t n, size_t *used)
{
    size_t k = want < n - *used ? want : n - *used;

    if (k > 0)
        memcpy(d->buf + d->have, in + *used, k);
    d->have += k;
    *used += k;
}

enum wire_status
wire_decode(struct wire_decoder *d, const unsigned char *in, size_t n, size_t *used)
{
    *used = 0;
    if (d->failed)
        return WIRE_FAILED;
    if (d->done) {
        d->done = 0;
        d->have = 0;
        d->payload = NULL;
    }
    if (d->have < WIRE_HEADER_LEN) {
        /* Take the header alone first so that its checks run before any payload is read. */
        take(d, WIRE_HEADER_LEN - d->have, in, n, used);
        if (d->have < WIRE_HEADER_LEN)
            return WIRE_NEED_MORE;
        if (check_header(d) == WIRE_FAILED)
            return WIRE_FAILED;
    }
    /* want <= WIRE_MAX_FRAME: check_header refused anything larger. */
    take(d, d->want - d->have, in, n, used);
    if (d->have < d->want)
        return WIRE_NEED_MORE;
    return check_payload(d);
}
