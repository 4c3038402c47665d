/*
 * test_random_frames: the decoder against many pseudo-random frames, deterministically.
 *
 *     build/test_random_frames [COUNT] [REGRESSION-FILE...]
 *
 * COUNT frames (default 100000) from a fixed seed: most are valid (random handles, messages of
 * 1-, 2-, 3- and 4-byte UTF-8, QUITs and ERRORs), the rest are valid frames with one byte changed.
 * Each is decoded whole, cut in two at every position (in long frames: every position within 64
 * bytes of either end, and one in the middle that walks along), and (every 8th) one byte at a
 * time; the outcomes must agree (W-5), and a valid frame must come out as it went in.  Files from fuzz/regressions/ are replayed as the fuzzer feeds them.
 * Prints "N passed, N failed" and exits 0 iff nothing failed.  Meant to run under ASan/UBSan.
 */
#include "chatwire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15u; /* fixed: every run tests the same frames */

static uint32_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* One code point of a given UTF-8 length, never a control character, '>' or whitespace. */
static size_t
put_char(unsigned char *out, unsigned width)
{
    static const uint32_t first[] = {0, 0x21, 0xE9, 0x20AC, 0x1F600};
    uint32_t cp = first[width] + next() % 64;

    if (cp == '>')
        cp = 'A';
    switch (width) {
    case 1: out[0] = (unsigned char)cp; return 1;
    case 2: out[0] = (unsigned char)(0xC0 | cp >> 6); out[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2;
    case 3:
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    default:
        out[0] = (unsigned char)(0xF0 | cp >> 18);
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        return 4;
    }
}

static size_t
put_text(unsigned char *out, size_t chars)
{
    size_t n = 0;

    while (chars-- > 0)
        n += put_char(out + n, 1 + next() % 4);
    return n;
}

/* A valid frame of a random type; returns its size. */
static size_t
valid_frame(unsigned char *frame)
{
    unsigned char payload[WIRE_MAX_PAYLOAD];
    size_t len = 0;
    unsigned char type;

    switch (next() % 4) {
    case 0: type = WIRE_HELLO; len = put_text(payload, 1 + next() % WIRE_HANDLE_MAX_CHARS); break;
    case 1:
        type = WIRE_MESSAGE;
        len = put_text(payload, next() % 8 == 0 ? WIRE_MESSAGE_MAX_CHARS : 1 + next() % 40);
        break;
    case 2: type = WIRE_QUIT; break;
    default:
        type = WIRE_ERROR;
        payload[0] = (unsigned char)(next() % 7);
        len = 1 + next() % (WIRE_REASON_MAX + 1);
        for (size_t i = 1; i < len; i++)
            payload[i] = (unsigned char)next(); /* reasons are not checked (W-6) */
        break;
    }
    return wire_encode(frame, WIRE_MAX_FRAME, type, payload, len);
}

struct outcome {
    enum wire_status status;
    unsigned char type;
    unsigned code;
    size_t len;
    unsigned char payload[WIRE_MAX_PAYLOAD];
};

/* Feeds frame[0..n) in pieces of `step` bytes (the first piece `first` bytes long). */
static void
decode(const unsigned char *frame, size_t n, size_t first, size_t step, struct outcome *o)
{
    struct wire_decoder d;
    size_t pos = 0, used, piece;

    memset(o, 0, sizeof *o);
    wire_decoder_init(&d, WIRE_ALLOW_ALL);
    o->status = WIRE_NEED_MORE;
    while (pos < n && o->status == WIRE_NEED_MORE) {
        piece = pos == 0 && first > 0 ? first : step;
        if (piece > n - pos)
            piece = n - pos;
        o->status = wire_decode(&d, frame + pos, piece, &used);
        pos += used;
    }
    if (o->status == WIRE_FRAME) {
        o->type = d.type;
        o->len = d.len;
        memcpy(o->payload, d.payload, d.len);
    } else if (o->status == WIRE_FAILED) {
        o->code = d.code;
    }
}

static int
same(const struct outcome *a, const struct outcome *b)
{
    return a->status == b->status && a->type == b->type && a->code == b->code && a->len == b->len &&
           memcmp(a->payload, b->payload, a->len) == 0;
}

static int
check_one(unsigned long i, const unsigned char *frame, size_t n, int valid)
{
    struct outcome whole, cut, bytes;

    decode(frame, n, 0, n, &whole);
    for (size_t at = 1; at < n; at++) {
        /* Every split of a short frame; of a long one, every split near its start and end (the
         * header and the payload's edges) and one that walks through the middle. */
        if (n > 128 && at >= 64 && at <= n - 64 && at != 1 + i % n)
            continue;
        decode(frame, n, at, n, &cut);
        if (!same(&whole, &cut)) {
            printf("FAIL frame %lu: cut at %zu differs from whole\n", i, at);
            return 0;
        }
    }
    if (i % 8 == 0) {
        decode(frame, n, 0, 1, &bytes);
        if (!same(&whole, &bytes)) {
            printf("FAIL frame %lu: bytewise differs from whole\n", i);
            return 0;
        }
    }
    if (valid && (whole.status != WIRE_FRAME || whole.type != frame[0] || whole.len != n - WIRE_HEADER_LEN ||
                  memcmp(whole.payload, frame + WIRE_HEADER_LEN, whole.len) != 0)) {
        printf("FAIL frame %lu: a valid frame did not come out as it went in\n", i);
        return 0;
    }
    return 1;
}

/* A fuzzer artifact: mask byte, chunk byte, stream (as fuzz/fuzz_decoder.c reads them). */
static int
replay(const char *path)
{
    static unsigned char data[1 << 16];
    struct wire_decoder d;
    size_t n, pos, used, chunk;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        printf("FAIL %s: cannot open\n", path);
        return 0;
    }
    n = fread(data, 1, sizeof data, f);
    fclose(f);
    if (n < 2)
        return 1;
    wire_decoder_init(&d, data[0] & WIRE_ALLOW_ALL);
    chunk = (size_t)data[1] % 17 + 1;
    for (pos = 2; pos < n; pos += used)
        if (wire_decode(&d, data + pos, n - pos < chunk ? n - pos : chunk, &used) == WIRE_FAILED)
            break;
    return 1; /* surviving under the sanitizers is the test */
}

int
main(int argc, char **argv)
{
    unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000, i, failed = 0;
    unsigned char frame[WIRE_MAX_FRAME];
    size_t n;
    int valid;

    for (i = 0; i < count; i++) {
        n = valid_frame(frame);
        valid = next() % 4 != 0;
        if (!valid)
            frame[next() % n] ^= (unsigned char)(1 + next() % 255); /* one byte changed */
        failed += !check_one(i, frame, n, valid);
    }
    for (int a = 2; a < argc; a++)
        failed += !replay(argv[a]);
    printf("%lu passed, %lu failed\n", count + (unsigned long)(argc > 2 ? argc - 2 : 0) - failed, failed);
    return failed != 0;
}
