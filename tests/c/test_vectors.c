/*
 * test_vectors: checks chatwire against the golden frame vectors.
 *
 *     build/test_vectors vectors/frames.txt
 *
 * Each vector is decoded (with every frame type allowed) in one chunk, split in two at every
 * point, one byte at a time, and followed by a QUIT frame in the same chunk, because W-5 says
 * segmentation must not matter.  Valid frames are also re-encoded.  Prints one line per failed
 * check, then "N passed, N failed" counting vectors; exits 0 iff nothing failed.
 */
#include "chatwire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES 8192 /* well above one frame plus a QUIT */
#define MAX_EVENTS 4

static const unsigned char quit_frame[] = {0x51, 0x00, 0x00};

/* One thing the decoder reported, and how many input bytes it had consumed by then. */
struct event {
    enum wire_status status;
    size_t at;
    unsigned char type;
    unsigned code;
    size_t len;
    unsigned char payload[WIRE_MAX_PAYLOAD];
};

struct outcome {
    struct event ev[MAX_EVENTS];
    int n;
    int overflow;
};

struct vector {
    char name[64];
    int ok;           /* expect a valid frame */
    unsigned code;    /* else the expected error code ... */
    int at_header;    /* ... reported at the header (else once the frame is complete) */
    unsigned char bytes[MAX_BYTES];
    size_t len;
};

static int vector_failed;

static void
failf(const struct vector *v, const char *mode, const char *what)
{
    printf("FAIL %s: %s%s%s\n", v->name, mode, *mode ? ": " : "", what);
    vector_failed = 1;
}

/* ---- running the decoder ---- */

static void
record(struct outcome *o, const struct wire_decoder *d, enum wire_status st, size_t at)
{
    struct event *e;

    if (o->n == MAX_EVENTS) {
        o->overflow = 1;
        return;
    }
    e = &o->ev[o->n++];
    e->status = st;
    e->at = at;
    if (st == WIRE_FRAME) {
        e->type = d->type;
        e->len = d->len;
        memcpy(e->payload, d->payload, d->len);
    } else {
        e->code = d->code;
    }
}

/* Feeds bytes[0..len) cut at the given chunk boundaries, each chunk until it is used up,
 * recording every frame and error.  Stops at the first error (errors are sticky). */
static void
run(const unsigned char *bytes, size_t len, const size_t *cuts, size_t ncuts, struct outcome *o)
{
    struct wire_decoder d;
    size_t start = 0, end, off, used, c;
    enum wire_status st;

    memset(o, 0, sizeof *o);
    wire_decoder_init(&d, WIRE_ALLOW_ALL);
    for (c = 0; c <= ncuts; c++) {
        end = c < ncuts ? cuts[c] : len;
        off = start;
        while (off < end) {
            st = wire_decode(&d, bytes + off, end - off, &used);
            off += used;
            if (st != WIRE_NEED_MORE)
                record(o, &d, st, off);
            if (st == WIRE_FAILED)
                return;
            if (st == WIRE_NEED_MORE && off != end) {
                o->overflow = 1; /* NEED_MORE must consume the whole chunk */
                return;
            }
        }
        start = end;
    }
}

/* ---- checking an outcome ---- */

static void
check_frame(const struct vector *v, const char *mode, const struct event *e, size_t at,
            unsigned char type, const unsigned char *payload, size_t len)
{
    char what[160];

    if (e->status != WIRE_FRAME) {
        snprintf(what, sizeof what, "error %s at byte %zu, expected a frame",
                 wire_code_name(e->code), e->at);
        failf(v, mode, what);
    } else if (e->at != at) {
        snprintf(what, sizeof what, "frame completed at byte %zu, expected %zu", e->at, at);
        failf(v, mode, what);
    } else if (e->type != type || e->len != len || memcmp(e->payload, payload, len) != 0) {
        snprintf(what, sizeof what, "frame type 0x%02x length %zu differs from the input",
                 (unsigned)e->type, e->len);
        failf(v, mode, what);
    }
}

static void
check_outcome(const struct vector *v, const char *mode, const struct outcome *o, int coalesced)
{
    char what[160];
    size_t at = v->ok ? v->len : v->at_header ? WIRE_HEADER_LEN : v->len;
    int want = v->ok && coalesced ? 2 : 1;

    if (o->overflow) {
        failf(v, mode, "decoder reported more than expected or left input unconsumed");
        return;
    }
    if (o->n != want) {
        snprintf(what, sizeof what, "%d results, expected %d", o->n, want);
        failf(v, mode, what);
        return;
    }
    if (v->ok) {
        check_frame(v, mode, &o->ev[0], at, v->bytes[0], v->bytes + WIRE_HEADER_LEN,
                    v->len - WIRE_HEADER_LEN);
        if (coalesced)
            check_frame(v, mode, &o->ev[1], at + sizeof quit_frame, WIRE_QUIT,
                        quit_frame + sizeof quit_frame, 0);
        return;
    }
    if (o->ev[0].status != WIRE_FAILED) {
        snprintf(what, sizeof what, "frame at byte %zu, expected error %s", o->ev[0].at,
                 wire_code_name(v->code));
        failf(v, mode, what);
    } else if (o->ev[0].code != v->code || o->ev[0].at != at) {
        snprintf(what, sizeof what, "error %s at byte %zu, expected %s at byte %zu",
                 wire_code_name(o->ev[0].code), o->ev[0].at, wire_code_name(v->code), at);
        failf(v, mode, what);
    }
}

static void
check_encode(const struct vector *v)
{
    unsigned char out[MAX_BYTES];
    size_t n = wire_encode(out, sizeof out, v->bytes[0], v->bytes + WIRE_HEADER_LEN,
                           v->len - WIRE_HEADER_LEN);

    if (n != v->len || memcmp(out, v->bytes, n) != 0)
        failf(v, "encode", "wire_encode does not reproduce the bytes");
}

static void
test_vector(const struct vector *v)
{
    struct outcome o;
    unsigned char joined[MAX_BYTES + sizeof quit_frame];
    size_t cut, i, *cuts;
    char mode[48];

    run(v->bytes, v->len, NULL, 0, &o);
    check_outcome(v, "one chunk", &o, 0);

    for (cut = 1; cut < v->len; cut++) {
        run(v->bytes, v->len, &cut, 1, &o);
        snprintf(mode, sizeof mode, "split at %zu", cut);
        check_outcome(v, mode, &o, 0);
    }

    cuts = malloc(v->len * sizeof *cuts + 1);
    if (cuts == NULL) {
        failf(v, "byte at a time", "out of memory");
    } else {
        for (i = 0; i + 1 < v->len; i++)
            cuts[i] = i + 1;
        run(v->bytes, v->len, cuts, v->len > 0 ? v->len - 1 : 0, &o);
        check_outcome(v, "byte at a time", &o, 0);
        free(cuts);
    }

    memcpy(joined, v->bytes, v->len);
    memcpy(joined + v->len, quit_frame, sizeof quit_frame);
    run(joined, v->len + sizeof quit_frame, NULL, 0, &o);
    check_outcome(v, "followed by QUIT", &o, 1);

    if (v->ok)
        check_encode(v);
}

/* ---- the golden frames of PROTOCOL.md 1.1, from literal arguments ---- */

struct golden {
    const char *name;
    unsigned char type;
    const char *payload;
    size_t len;
    const unsigned char bytes[16];
    size_t nbytes;
    int seen;
};

static struct golden goldens[] = {
    {"hello-chris", 'H', "Chris", 5, {0x48, 0x00, 0x05, 0x43, 0x68, 0x72, 0x69, 0x73}, 8, 0},
    {"hello-hosta", 'H', "HostA", 5, {0x48, 0x00, 0x05, 0x48, 0x6f, 0x73, 0x74, 0x41}, 8, 0},
    {"message-test", 'M', "test", 4, {0x4d, 0x00, 0x04, 0x74, 0x65, 0x73, 0x74}, 7, 0},
    {"message-hello", 'M', "hello", 5, {0x4d, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f}, 8, 0},
    {"quit", 'Q', "", 0, {0x51, 0x00, 0x00}, 3, 0},
    {"error-busy", 'E', "\001busy", 5, {0x45, 0x00, 0x05, 0x01, 0x62, 0x75, 0x73, 0x79}, 8, 0},
};
#define NGOLDEN (sizeof goldens / sizeof goldens[0])

/* Encodes a golden frame from its literal arguments; the vector of the same name, if given,
 * must hold the same bytes.  Returns 1 if it passed. */
static int
check_golden(struct golden *g, const struct vector *v)
{
    unsigned char out[16];
    size_t n = wire_encode(out, sizeof out, g->type, (const unsigned char *)g->payload, g->len);

    g->seen = 1;
    if (n != g->nbytes || memcmp(out, g->bytes, n) != 0) {
        printf("FAIL %s: encode: literal arguments do not give the bytes of PROTOCOL.md 1.1\n",
               g->name);
        return 0;
    }
    if (v != NULL && (v->len != g->nbytes || memcmp(v->bytes, g->bytes, v->len) != 0)) {
        printf("FAIL %s: vector bytes differ from PROTOCOL.md 1.1\n", g->name);
        return 0;
    }
    return 1;
}

/* ---- parsing vectors/frames.txt ---- */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Appends one token, HEX or HEX*N, to v->bytes.  Returns 0 on a malformed token. */
static int
parse_token(struct vector *v, const char *tok)
{
    unsigned char unit[MAX_BYTES];
    size_t nunit = 0, reps = 1, r;
    const char *p = tok;
    char *end;
    int hi, lo;

    for (; *p && *p != '*'; p += 2) {
        if ((hi = hexval((unsigned char)p[0])) < 0 || (lo = hexval((unsigned char)p[1])) < 0 ||
            nunit == sizeof unit)
            return 0;
        unit[nunit++] = (unsigned char)(hi << 4 | lo);
    }
    if (nunit == 0)
        return 0;
    if (*p == '*') {
        if (!isdigit((unsigned char)p[1]))
            return 0;
        reps = strtoul(p + 1, &end, 10);
        if (*end != '\0' || reps == 0 || reps > MAX_BYTES)
            return 0;
    }
    for (r = 0; r < reps; r++) {
        if (nunit > MAX_BYTES - v->len)
            return 0;
        memcpy(v->bytes + v->len, unit, nunit);
        v->len += nunit;
    }
    return 1;
}

static int
parse_expect(struct vector *v, const char *s)
{
    const char *slash = strchr(s, '/');
    unsigned c;

    if (strcmp(s, "ok") == 0) {
        v->ok = 1;
        return 1;
    }
    if (slash == NULL)
        return 0;
    if (strcmp(slash, "/header") == 0)
        v->at_header = 1;
    else if (strcmp(slash, "/payload") != 0)
        return 0;
    for (c = WIRE_BUSY; c <= WIRE_TIMEOUT; c++) {
        const char *name = wire_code_name(c);
        if (strlen(name) == (size_t)(slash - s) && strncmp(s, name, (size_t)(slash - s)) == 0) {
            v->code = c;
            return 1;
        }
    }
    return 0;
}

/* Parses one line that is not blank or a comment.  Returns 0 if it is malformed. */
static int
parse_line(struct vector *v, char *line)
{
    char *tok = strtok(line, " \t\r\n"), *expect;

    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", tok);
    if ((expect = strtok(NULL, " \t\r\n")) == NULL || !parse_expect(v, expect))
        return 0;
    while ((tok = strtok(NULL, " \t\r\n")) != NULL)
        if (!parse_token(v, tok))
            return 0;
    /* A valid frame needs its header; an error vector needs at least its header. */
    return v->len >= WIRE_HEADER_LEN;
}

static int
seen_before(char (*names)[64], size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

int
main(int argc, char **argv)
{
    static struct vector v;
    static char names[1024][64];
    char line[16384], *hash, *p;
    size_t nnames = 0, g;
    int passed = 0, failed = 0, lineno = 0, ok;
    FILE *f;

    if (argc != 2) {
        fputs("usage: test_vectors vectors/frames.txt\n", stderr);
        return 2;
    }
    if ((f = fopen(argv[1], "r")) == NULL) {
        perror(argv[1]);
        return 2;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            printf("FAIL line %d: too long to parse\n", lineno);
            failed++;
            break;
        }
        if ((hash = strchr(line, '#')) != NULL)
            *hash = '\0';
        for (p = line; isspace((unsigned char)*p); p++)
            ;
        if (*p == '\0')
            continue;

        vector_failed = 0;
        ok = parse_line(&v, p);
        if (!ok) {
            printf("FAIL %s: line %d cannot be parsed\n", v.name, lineno);
            vector_failed = 1;
        } else if (seen_before(names, nnames, v.name)) {
            printf("FAIL %s: line %d repeats the name\n", v.name, lineno);
            vector_failed = 1;
        } else {
            if (nnames < sizeof names / sizeof names[0])
                snprintf(names[nnames++], sizeof names[0], "%s", v.name);
            test_vector(&v);
            for (g = 0; g < NGOLDEN; g++)
                if (strcmp(goldens[g].name, v.name) == 0 && !check_golden(&goldens[g], &v))
                    vector_failed = 1;
        }
        if (vector_failed)
            failed++;
        else
            passed++;
    }
    fclose(f);

    /* The golden frames must be checked even if the file lost one; that counts as a failure. */
    for (g = 0; g < NGOLDEN; g++) {
        if (!goldens[g].seen) {
            check_golden(&goldens[g], NULL);
            printf("FAIL %s: missing from %s\n", goldens[g].name, argv[1]);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
