/*
 * chatclient: the reference client of the chat protocol, version 1 (PROTOCOL.md section 6).
 *
 *     ./chatclient HOST PORT
 *     ./chatclient --help
 *
 * In the manner of suckless sic: one file, one poll loop over the terminal, the socket and
 * a self-pipe for SIGINT.  Frames are encoded and decoded by chatwire.c; this file holds the
 * terminal, the connection and the conversation state (PROTOCOL.md section 4).
 */
#include "chatwire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HELLO_TIMEOUT_MS 10000 /* C-4, unless CHAT_HELLO_TIMEOUT says otherwise */
#define DRAIN_MS 1000          /* W-7 */
#define SEND_TIMEOUT_S 10      /* C-15: a server that stops reading cannot freeze the terminal */

/* A valid message is at most 500 code points of at most 4 bytes each, so a line longer than
 * this cannot be sent and need not be kept (C-7: it is refused, never truncated). */
#define LINE_MAX_BYTES (WIRE_MESSAGE_MAX_CHARS * 4)

#define USAGE "usage: chatclient HOST PORT"
enum { EXIT_USAGE = 2, EXIT_CONNECT = 3, EXIT_THEIR_ERROR = 4, EXIT_OUR_ERROR = 5,
       EXIT_LOST = 6 }; /* and 128 + N after signal N (C-9) */

/* The states of PROTOCOL.md section 4 as the client lives them.  ASK_HANDLE is START: no
 * connection yet.  CLOSED has no name: the program exits instead. */
enum state { ASK_HANDLE, HELLO_SENT, CLIENT_TURN, SERVER_TURN };

/* One line of input being collected.  Only the first LINE_MAX_BYTES are kept; the rest of an
 * over-long line is only checked for UTF-8 validity, so that its reason is still exact. */
struct line {
    unsigned char buf[LINE_MAX_BYTES];
    size_t len;
    int overflow;
    struct wire_utf8_stream utf8;
};

static const char *host;
static char port[8];
static struct addrinfo *addrs; /* HOST's addresses, resolved before the handle is asked (C-3) */
static volatile sig_atomic_t resolving; /* in getaddrinfo(): a signal ends us at once (C-9) */
static int sock = -1;
static int sigfd[2] = {-1, -1};
static volatile sig_atomic_t interrupted; /* the number of the signal that stops us, or 0 */
static enum state state = ASK_HANDLE;
static int prompt_showing; /* a prompt is on screen and its line is not ended yet */
static int stdin_tty;
static unsigned char handle[WIRE_HELLO_MAX];
static size_t handle_len;
static unsigned char peer[WIRE_HELLO_MAX];
static size_t peer_len;
static struct wire_decoder dec;
static struct timespec hello_deadline;
static struct line line;
static unsigned char inbuf[4096]; /* input read but not yet taken as lines */
static size_t inpos, inlen;

/* ---- output ----
 *
 * stdout is fully buffered and flushed once before each wait in the poll loop (and before
 * anything on stderr), so that everything an event prints - a message and the prompt after it -
 * reaches the terminal in one write. */

static void
out(const void *s, size_t n)
{
    fwrite(s, 1, n, stdout);
}

static void
outs(const char *s)
{
    fputs(s, stdout);
}

/* Ends the line of a prompt before anything else is printed, so that output never lands
 * after the prompt (C-10). */
static void
end_prompt_line(void)
{
    if (prompt_showing)
        outs("\n");
    prompt_showing = 0;
}

static void
show_prompt(void)
{
    if (state == ASK_HANDLE) {
        outs("Enter client handle (length 10 or less): ");
    } else {
        out(handle, handle_len);
        outs("> ");
    }
    prompt_showing = 1;
}

/* Prints one line on stderr.  stdout is flushed first so that the order on a terminal is
 * the order of events.  Only our own constant formats are used; text from the wire or the
 * user goes in as %s arguments after it has been checked or sanitised. */
static void
errline(const char *fmt, ...)
{
    va_list ap;

    end_prompt_line();
    fflush(stdout);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fflush(stderr);
}

/* ---- the socket ---- */

/* Sends all of buf.  MSG_NOSIGNAL (and SIGPIPE ignored) turn a closed peer into an error
 * return instead of death by SIGPIPE (C-15). */
static int
send_all(const unsigned char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = send(sock, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
send_frame(unsigned char type, const unsigned char *payload, size_t len)
{
    unsigned char frame[WIRE_MAX_FRAME];
    size_t n = wire_encode(frame, sizeof frame, type, payload, len);

    return n == 0 ? -1 : send_all(frame, n);
}

static long
ms_until(const struct timespec *t)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    if (ms < 0)
        return 0;
    /* Round up: waking a millisecond early would only make us poll again. */
    return ms >= INT_MAX ? INT_MAX : (long)ms + 1;
}

static struct timespec
ms_from_now(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* W-7: after our QUIT or ERROR, send FIN and read until the server closes or a second has
 * passed.  Closing with unread input would make the kernel send RST, and a RST can destroy
 * our last frame before the server has read it. */
static void
close_gracefully(void)
{
    unsigned char junk[4096];
    struct timespec deadline = ms_from_now(DRAIN_MS);
    struct pollfd p = {sock, POLLIN, 0};
    long left;
    ssize_t n;
    int r;

    shutdown(sock, SHUT_WR);
    while ((left = ms_until(&deadline)) > 0) {
        r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* a second has passed, or poll failed */
        n = recv(sock, junk, sizeof junk, 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    close(sock);
    sock = -1;
}

/* ---- the ways the program ends ---- */

static void
lost(void)
{
    errline("chatclient: the connection to the server was lost");
    exit(EXIT_LOST);
}

/* Leaves the conversation: QUIT once our HELLO is out (F-3), then close.  A failed QUIT is a
 * lost connection only if the caller wants to hear of it (\quit does; Ctrl-C does not). */
static void
leave(int status, int failure_is_lost)
{
    if (state != ASK_HANDLE) {
        if (send_frame(WIRE_QUIT, NULL, 0) < 0 && failure_is_lost)
            lost();
        close_gracefully();
    }
    exit(status);
}

/* E-2, C-13: the server broke the protocol (or never said HELLO, C-4). */
static void
protocol_error(unsigned code, const char *reason)
{
    unsigned char payload[1 + WIRE_REASON_MAX];
    size_t len = strlen(reason);

    len = len < WIRE_REASON_MAX ? len : WIRE_REASON_MAX;
    payload[0] = (unsigned char)code;
    memcpy(payload + 1, reason, len);
    send_frame(WIRE_ERROR, payload, 1 + len); /* if it fails, there is no one to tell */
    errline("chatclient: protocol error: sent ERROR %u %s (%s)", code, wire_code_name(code),
            reason);
    close_gracefully();
    exit(EXIT_OUR_ERROR);
}

static void
fail_local(const char *what)
{
    errline("chatclient: %s: %s", what, strerror(errno));
    leave(EXIT_FAILURE, 0);
}

/* ---- connecting ---- */

/* Connects fd to ai, finishing the connection if a signal interrupts connect(): the attempt
 * then goes on in the background and poll tells when it is over. */
static int
connect_one(int fd, const struct addrinfo *ai)
{
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    for (;;) {
        if (interrupted)
            exit(128 + interrupted); /* nothing sent yet: nothing to say goodbye to (C-9) */
        if (poll(&p, 1, -1) >= 0)
            break;
        if (errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    errno = err;
    return err == 0 ? 0 : -1;
}

/* A blocking send to a server that has stopped reading would wait forever, with the user's
 * terminal frozen; with this limit it fails (EAGAIN) and counts as a lost connection (C-15). */
static void
limit_sends(int fd)
{
    struct timeval limit = {SEND_TIMEOUT_S, 0};

    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
}

/* C-3: HOST is resolved before the handle is asked, so that a mistyped host is told at once
 * rather than after the user has typed a handle.  getaddrinfo() may wait for DNS and does not
 * return early on a signal, so until it returns a signal ends the program from its handler. */
static void
resolve(void)
{
    struct addrinfo hints;
    int r;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    resolving = 1;
    r = getaddrinfo(host, port, &hints, &addrs);
    resolving = 0;
    if (r != 0) {
        errline("chatclient: cannot resolve %s: %s", host,
                r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        exit(EXIT_CONNECT);
    }
}

/* C-3: every address of HOST in turn, IPv4 or IPv6, until one connects.  Only once the handle
 * is typed: the server's handshake timeout counts from its accept (S-11), not from our start. */
static int
dial(void)
{
    struct addrinfo *ai;
    int fd = -1, err = 0;

    for (ai = addrs; ai != NULL; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0) {
            err = errno;
            continue;
        }
        if (connect_one(fd, ai) == 0) {
            limit_sends(fd);
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(addrs);
    addrs = NULL;
    if (interrupted)
        exit(128 + interrupted);
    if (fd < 0) {
        errline("chatclient: cannot connect to %s port %s: %s", host, port, strerror(err));
        exit(EXIT_CONNECT);
    }
    return fd;
}

/* ---- the conversation ---- */

/* The frames the server may send in each state (section 4); ERROR is always allowed. */
static void
enter(enum state s)
{
    static const unsigned allowed[] = {
        [ASK_HANDLE] = 0,
        [HELLO_SENT] = WIRE_ALLOW_HELLO,
        [CLIENT_TURN] = WIRE_ALLOW_QUIT,
        [SERVER_TURN] = WIRE_ALLOW_MESSAGE | WIRE_ALLOW_QUIT,
    };

    state = s;
    dec.allowed = allowed[s];
}

/* The E-4 reason for a frame that is not allowed now, in the words of E-1. */
static const char *
unexpected_reason(unsigned char type)
{
    static char why[64];

    if (state == HELLO_SENT)
        snprintf(why, sizeof why, "%s before HELLO", wire_type_name(type));
    else if (type == WIRE_HELLO)
        snprintf(why, sizeof why, "second HELLO");
    else
        snprintf(why, sizeof why, "%s out of turn", wire_type_name(type));
    return why;
}

static void
on_hello(void)
{
    memcpy(peer, dec.payload, dec.len);
    peer_len = dec.len;
    enter(CLIENT_TURN);
    show_prompt();
}

/* C-6: the text has passed T-3 in the decoder, so it holds no control characters. */
static void
on_message(void)
{
    end_prompt_line();
    out(peer, peer_len);
    outs("> ");
    out(dec.payload, dec.len);
    outs("\n");
    enter(CLIENT_TURN);
    show_prompt();
}

/* C-11, W-8: the server is gone; nothing more is sent or read. */
static void
on_quit(void)
{
    end_prompt_line();
    outs("The server has closed the connection...\n");
    fflush(stdout);
    close(sock);
    exit(EXIT_SUCCESS);
}

/* C-12: the reason is the server's free text, so it is shown only sanitised (W-6). */
static void
on_error(void)
{
    static const char *const what[] = {
        [WIRE_BUSY] = "the server is busy with another client",
        [WIRE_MALFORMED] = "the server got a malformed frame",
        [WIRE_UNEXPECTED] = "the server got an unexpected frame",
        [WIRE_BAD_HANDLE] = "the server rejected the handle",
        [WIRE_TIMEOUT] = "the server timed out waiting for HELLO",
    };
    char reason[WIRE_REASON_MAX + 1];
    unsigned code = dec.payload[0];

    wire_sanitize(dec.payload + 1, dec.len - 1, reason, sizeof reason);
    errline("chatclient: server sent ERROR %u %s (%s): %s", code, wire_code_name(code),
            code >= WIRE_BUSY && code <= WIRE_TIMEOUT ? what[code] : "unknown error code",
            reason);
    close(sock);
    exit(EXIT_THEIR_ERROR);
}

static void
on_frame(void)
{
    switch (dec.type) {
    case WIRE_HELLO:   on_hello();   break;
    case WIRE_MESSAGE: on_message(); break;
    case WIRE_QUIT:    on_quit();    break;
    case WIRE_ERROR:   on_error();   break;
    }
}

/* Feeds received bytes to the decoder one frame at a time, so that each frame is checked
 * against the state the frames before it have led to. */
static void
feed(const unsigned char *p, size_t n)
{
    size_t used;

    while (n > 0) {
        switch (wire_decode(&dec, p, n, &used)) {
        case WIRE_NEED_MORE:
            return;
        case WIRE_FAILED:
            protocol_error(dec.code,
                           dec.code == WIRE_UNEXPECTED ? unexpected_reason(dec.type) : dec.reason);
            return;
        case WIRE_FRAME:
            on_frame();
            break;
        }
        p += used;
        n -= used;
    }
}

/* At most one frame's worth per read, so unprocessed input never exceeds it (W-5). */
static void
on_socket(void)
{
    unsigned char buf[WIRE_MAX_FRAME];
    ssize_t n = recv(sock, buf, sizeof buf, 0);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0)
        lost(); /* EOF or reset without QUIT or ERROR, maybe mid-frame (E-5, C-14) */
    feed(buf, (size_t)n);
}

/* C-4: 10 s, or CHAT_HELLO_TIMEOUT seconds, so that a test of the timeout need not wait 10 s. */
static long
hello_timeout_ms(void)
{
    const char *env = getenv("CHAT_HELLO_TIMEOUT");
    char *end;
    double s;

    if (env == NULL || *env == '\0')
        return HELLO_TIMEOUT_MS;
    s = strtod(env, &end);
    if (*end != '\0' || !(s > 0 && s <= 3600))
        return HELLO_TIMEOUT_MS;
    return (long)(s * 1000);
}

/* C-4: the reason names the wait this client used, so that a server's log is not told 10 s
 * after a wait of 0.3 s. */
static void
on_hello_timeout(void)
{
    char why[64];

    snprintf(why, sizeof why, "no HELLO within %g s", hello_timeout_ms() / 1000.0);
    protocol_error(WIRE_TIMEOUT, why);
}

/* C-9: Ctrl-C, or SIGTERM or SIGHUP.  After Ctrl-C the terminal has echoed ^C after
 * whatever was on the line. */
static void
on_interrupt(void)
{
    char junk[64];

    while (read(sigfd[0], junk, sizeof junk) > 0)
        ;
    if (!interrupted)
        return;
    if (stdin_tty)
        prompt_showing = 1;
    end_prompt_line();
    fflush(stdout);
    leave(128 + interrupted, 0);
}

/* ---- lines from the user ---- */

static int
is_quit(const unsigned char *s, size_t n)
{
    return n == 5 && memcmp(s, "\\quit", 5) == 0;
}

/* C-2: a handle, or the prompt again (fatal when nobody is there to retype it). */
static void
handle_line(const unsigned char *s, size_t n, const char *problem)
{
    if (is_quit(s, n))
        exit(EXIT_SUCCESS); /* not connected yet: nothing to close */
    if (problem == NULL)
        problem = wire_handle_problem(s, n);
    if (problem != NULL && !stdin_tty) {
        errline("chatclient: invalid handle: it %s", problem);
        exit(EXIT_USAGE);
    }
    if (problem != NULL) {
        outs("Invalid handle: it ");
        outs(problem);
        outs(".\n");
        show_prompt();
        return;
    }
    memcpy(handle, s, n);
    handle_len = n;
    sock = dial();
    /* C-4 counts from the connection, not from when the HELLO is out. */
    hello_deadline = ms_from_now(hello_timeout_ms());
    wire_decoder_init(&dec, 0);
    enter(HELLO_SENT);
    if (send_frame(WIRE_HELLO, handle, handle_len) < 0)
        lost();
}

/* C-5, C-7, C-8: a message, \quit, or a line out of turn. */
static void
message_line(const unsigned char *s, size_t n, const char *problem)
{
    if (is_quit(s, n))
        leave(EXIT_SUCCESS, 1);
    if (state != CLIENT_TURN) {
        outs("Not your turn; the line was not sent.\n");
        fflush(stdout);
        return;
    }
    if (problem == NULL)
        problem = wire_message_problem(s, n);
    if (problem != NULL) {
        outs("Message not sent: it ");
        outs(problem);
        outs(".\n");
        show_prompt();
        return;
    }
    if (send_frame(WIRE_MESSAGE, s, n) < 0)
        lost();
    enter(SERVER_TURN);
}

static void
line_done(void)
{
    const char *problem = NULL;

    /* An over-long line is refused for its first broken rule in the order of T-1/T-3:
     * UTF-8, then length (it is not empty, and its length decides before its contents). */
    if (line.overflow)
        problem = !wire_utf8_stream_ok(&line.utf8) ? "is not valid UTF-8"
                  : state == ASK_HANDLE           ? "is longer than 10 characters"
                                                  : "is longer than 500 characters";
    /* At a terminal the user's Enter, echoed, has ended the prompt's line.  Nothing echoes a
     * line read from a file or pipe, so the client ends that line itself (C-10). */
    if (stdin_tty)
        prompt_showing = 0;
    else
        end_prompt_line();
    if (state == ASK_HANDLE)
        handle_line(line.buf, line.len, problem);
    else
        message_line(line.buf, line.len, problem);
    memset(&line.utf8, 0, sizeof line.utf8);
    line.len = 0;
    line.overflow = 0;
}

static void
line_byte(unsigned char b)
{
    if (b == '\n') {
        line_done();
        return;
    }
    wire_utf8_stream_byte(&line.utf8, b);
    if (line.len < sizeof line.buf)
        line.buf[line.len++] = b;
    else
        line.overflow = 1;
}

/* C-8: end of input is \quit once connected; at the handle prompt it just ends (C-2). */
static void
end_of_input(void)
{
    if (line.len > 0 || line.overflow)
        line_done(); /* a last line without its newline is still a line */
    if (state == ASK_HANDLE)
        prompt_showing = 1; /* ^D leaves the cursor after the prompt */
    end_prompt_line();
    fflush(stdout);
    leave(EXIT_SUCCESS, 1);
}

/* A person at a terminal gets an answer to every line at once, in turn or not (C-7); the
 * lines of a script are taken only in the client's turn, so they go out in the order written. */
static int
reading_allowed(void)
{
    return stdin_tty || state == ASK_HANDLE || state == CLIENT_TURN;
}

/* Works through what was read as far as the turn allows; the rest waits in inbuf. */
static void
process_input(void)
{
    while (inpos < inlen && reading_allowed())
        line_byte(inbuf[inpos++]);
}

/* read(2), not stdio: stdio would keep bytes in its buffer that poll cannot see. */
static void
on_stdin(void)
{
    ssize_t n = read(STDIN_FILENO, inbuf, sizeof inbuf);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n < 0)
        fail_local("cannot read standard input");
    if (n == 0)
        end_of_input();
    inpos = 0;
    inlen = (size_t)n;
    process_input();
}

/* ---- setup and the loop ---- */

static void
on_sigint(int sig)
{
    int saved = errno;
    ssize_t r;

    if (resolving)
        _exit(128 + sig); /* nothing shown or sent yet: nothing to finish (C-9) */
    interrupted = sig;
    r = write(sigfd[1], "", 1); /* wakes poll; if the pipe is full, it already will */
    (void)r;
    errno = saved;
}

/* The self-pipe turns SIGINT, SIGTERM and SIGHUP into an event of the poll loop.  No SA_RESTART: a blocked
 * connect() must return so that Ctrl-C works while connecting too. */
static void
setup_signals(void)
{
    struct sigaction sa;
    int i;

    if (pipe(sigfd) < 0)
        fail_local("pipe");
    for (i = 0; i < 2; i++) {
        fcntl(sigfd[i], F_SETFL, fcntl(sigfd[i], F_GETFL) | O_NONBLOCK);
        fcntl(sigfd[i], F_SETFD, FD_CLOEXEC);
    }
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* C-15 */
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* A closed stdin, stdout or stderr would be taken by the next descriptor we open: the socket
 * could then receive our prompts.  /dev/null in its place makes a closed stdin end of input. */
static void
guard_std_fds(void)
{
    int fd;

    for (fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd)
            exit(EXIT_FAILURE);
}

/* C-1: PORT is 1 to 65535, in decimal digits only.  Returns why it is not, or NULL with the
 * port kept in `port`. */
static const char *
port_problem(const char *s)
{
    unsigned long v = 0;

    if (*s == '\0')
        return "it is empty";
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return "it is not a decimal number";
        if (v <= 65535) /* past it the value no longer matters, and cannot overflow */
            v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v < 1 || v > 65535)
        return "it is not between 1 and 65535";
    snprintf(port, sizeof port, "%lu", v);
    return NULL;
}

static const char help[] =
    USAGE "\n"
    "\n"
    "Chat with the server at HOST (a name, or an IPv4 or IPv6 address) on TCP port PORT\n"
    "(1 to 65535).  HOST is resolved first; the connection is made once you have typed\n"
    "your handle.  Type a line to send it in your turn; \\quit or Ctrl-D leaves.\n"
    "\n"
    "Exit status: 0 after \\quit, Ctrl-D or the server's QUIT; 1 a local failure;\n"
    "2 a usage error; 3 HOST cannot be resolved or reached; 4 the server sent ERROR;\n"
    "5 the server broke the protocol or never said HELLO; 6 the connection was lost;\n"
    "128+N stopped by signal N.\n";

/* C-1: --help on stdout with status 0; a usage error is one line on stderr, status 2. */
static void
command_line(int argc, char **argv)
{
    char shown[64];
    const char *problem;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(help, stdout);
        exit(fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
    }
    if (argc != 3) {
        fputs(USAGE "\n", stderr);
        exit(EXIT_USAGE);
    }
    if ((problem = port_problem(argv[2])) != NULL) {
        /* The argument is shown sanitised: it could hold escape sequences. */
        wire_sanitize((const unsigned char *)argv[2], strlen(argv[2]), shown, sizeof shown);
        fprintf(stderr, "chatclient: invalid port '%s': %s\n", shown, problem);
        exit(EXIT_USAGE);
    }
    host = argv[1];
}

static void
run(void)
{
    struct pollfd p[3];
    long timeout;

    for (;;) {
        p[0] = (struct pollfd){sigfd[0], POLLIN, 0};
        p[1] = (struct pollfd){sock, POLLIN, 0}; /* -1 before connecting: poll skips it */
        process_input(); /* a turn may have come for lines a script sent ahead */
        /* More input only once the last read is used up (-1: poll skips it). */
        p[2] = (struct pollfd){inpos == inlen && reading_allowed() ? STDIN_FILENO : -1, POLLIN, 0};
        /* Only the wait for the server's HELLO has a deadline; otherwise block (no CPU). */
        timeout = state == HELLO_SENT ? ms_until(&hello_deadline) : -1;
        fflush(stdout); /* what this round printed, in one write, before we wait */
        if (poll(p, 3, (int)timeout) < 0) {
            if (errno == EINTR)
                continue;
            fail_local("poll");
        }
        if (p[0].revents)
            on_interrupt();
        /* The socket before the terminal: a QUIT or ERROR that has arrived wins over a line
         * typed at the same time (F-3). */
        if (p[1].revents)
            on_socket();
        if (state == HELLO_SENT && ms_until(&hello_deadline) == 0)
            on_hello_timeout();
        if (p[2].revents)
            on_stdin();
    }
}

int
main(int argc, char **argv)
{
    guard_std_fds();
    command_line(argc, argv);
    stdin_tty = isatty(STDIN_FILENO);
    setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
    setup_signals();
    resolve();
    show_prompt();
    run();
    return EXIT_SUCCESS;
}
