/*
 * libFuzzer harness for the client's frame decoder (chatwire.c).
 *
 * Input: byte 0 picks the allowed-types mask, byte 1 the chunk size; the rest is the stream the
 * decoder is fed.  Besides the sanitizers, it checks what the decoder promises (chatwire.h):
 * progress, bounds, a failure is sticky, a frame it accepts passes the text rules and re-encodes
 * to the bytes it came from, and the same stream fed whole gives the same outcome.
 */
#include "chatwire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* What one pass over the stream produced: frame types and the final status, for comparing. */
struct trace {
    unsigned char types[4096];
    size_t frames;
    enum wire_status last;
    unsigned code;
};

static void
check_frame(const struct wire_decoder *d)
{
    unsigned char again[WIRE_MAX_FRAME];
    size_t n;

    CHECK(d->len <= WIRE_MAX_PAYLOAD);
    CHECK(wire_type_name(d->type) != NULL);
    if (d->type == WIRE_HELLO)
        CHECK(wire_handle_problem(d->payload, d->len) == NULL);
    if (d->type == WIRE_MESSAGE)
        CHECK(wire_message_problem(d->payload, d->len) == NULL);
    n = wire_encode(again, sizeof again, d->type, d->payload, d->len);
    CHECK(n == WIRE_HEADER_LEN + d->len);
}

static void
run(const unsigned char *s, size_t n, unsigned allowed, size_t chunk, struct trace *t)
{
    struct wire_decoder d;
    size_t pos = 0, used, len;
    enum wire_status st = WIRE_NEED_MORE;

    memset(t, 0, sizeof *t);
    wire_decoder_init(&d, allowed);
    while (pos < n) {
        len = n - pos < chunk ? n - pos : chunk;
        st = wire_decode(&d, s + pos, len, &used);
        CHECK(used <= len);
        if (st == WIRE_FAILED) {
            CHECK(d.code == WIRE_MALFORMED || d.code == WIRE_UNEXPECTED || d.code == WIRE_BAD_HANDLE);
            CHECK(memchr(d.reason, '\0', sizeof d.reason) != NULL);
            CHECK(wire_decode(&d, s + pos, len, &used) == WIRE_FAILED && used == 0);
            t->code = d.code;
            break;
        }
        if (st == WIRE_FRAME) {
            check_frame(&d);
            if (t->frames < sizeof t->types)
                t->types[t->frames] = d.type;
            t->frames++;
        } else {
            CHECK(used == len); /* NEED_MORE takes everything it was given */
        }
        pos += used;
    }
    t->last = st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace cut, whole;
    char text[256];

    if (size < 2)
        return 0;
    run(data + 2, size - 2, data[0] & WIRE_ALLOW_ALL, (size_t)data[1] % 17 + 1, &cut);
    run(data + 2, size - 2, data[0] & WIRE_ALLOW_ALL, size, &whole);
    /* W-5: segmentation never changes the outcome. */
    CHECK(cut.frames == whole.frames && cut.last == whole.last && cut.code == whole.code);
    CHECK(memcmp(cut.types, whole.types, cut.frames < sizeof cut.types ? cut.frames : sizeof cut.types) == 0);
    /* The text helpers on arbitrary bytes. */
    wire_handle_problem(data, size);
    wire_message_problem(data, size);
    wire_sanitize(data, size, text, sizeof text);
    CHECK(strlen(text) < sizeof text);
    return 0;
}
