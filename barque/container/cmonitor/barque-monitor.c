/*
 * barque-monitor: the idle life of a detached container's monitor, in C.
 *
 * barque's monitor (barque/container/monitor.py) creates and starts a container in a process forked from the CLI,
 * then re-executes itself for the long, idle part of its life. A Python interpreter doing nothing costs about
 * 2.8 MiB of PSS, as much as Docker's whole containerd shim; this program does the same work in a few hundred KiB:
 *
 *   - it holds the container's stdio (pipes, or a terminal's master) and writes Docker's json-file log, byte for
 *     byte as barque.container.logs.LogWriter does (Go's escaping, 16 KiB partial entries, rotation by size);
 *   - it serves the attach socket `<run dir>/attach.sock` with the protocol of monitor.py's docstring (a JSON hello
 *     line, then frames with Docker's 8-byte header);
 *   - it reaps children (it is a child subreaper, the container's PID 1 is its child) and, once the container has
 *     exited and its output is drained, executes the finisher — Python again, `monitor.finish_from_c` — handing it
 *     the exit status and the attached clients' sockets, which records the exit, applies the restart policy or
 *     --rm, and tells the clients.
 *
 * Health checks and compressed logs stay with the Python monitor (monitor.py decides which one runs).
 *
 * Usage: barque-monitor --pid N [--stdout FD] [--stderr FD] [--stdin FD] [--master FD] --tty 0|1
 *          --stdin-once 0|1 --run-dir DIR [--log PATH --max-size N --max-file N] -- FINISHER ARGV...
 * The finisher is run as FINISHER ARGV... EXIT_STATUS CLIENT_FD...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define OUT 1
#define ERR 2
#define STDIN_FRAME 0
#define RESIZE 4
#define STDIN_CLOSE 5
#define PARTIAL_SIZE (16 * 1024)
#define READ_SIZE 65536
#define MAX_HELLO 65536
#define DRAIN_NS 2000000000LL

/* ---- small helpers ------------------------------------------------------------------------------------------- */

static void die(const char *what) {
    fprintf(stderr, "barque-monitor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        errno = ENOMEM;
        die("realloc");
    }
    return q;
}

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_drop(struct buf *b, size_t n) { /* remove the first n bytes */
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p = {fd, POLLOUT, 0};
                poll(&p, 1, 1000);
                continue;
            }
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static void set_blocking(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, on ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK));
}

/* ---- the json-file log (barque.container.logs.LogWriter) ----------------------------------------------------- */

struct pending {
    struct buf text;
    int64_t partial_ns; /* time of the first piece of a line split into partial entries; 0 when none */
    uint64_t seq;       /* when the pending text was left: the close writes them in that order */
};

static struct {
    const char *path; /* NULL: the `none` driver */
    int fd;
    int64_t max_size; /* < 0: never rotate */
    int max_file;
    int64_t size;
    struct pending streams[3];
    uint64_t seq;
} logw = {.fd = -1, .max_size = -1, .max_file = 1};

static const char HEX[] = "0123456789abcdef";

/* the length of a valid UTF-8 sequence at s (Go's utf8.DecodeRune rules), or 0 for an invalid byte */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

static void json_string(struct buf *out, const char *data, size_t n) {
    const unsigned char *s = (const unsigned char *)data;
    buf_add(out, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            uint32_t cp;
            size_t len = utf8_len(s + i, n - i, &cp);
            if (len == 0) {
                buf_str(out, "\\ufffd");
                i++;
            } else if (cp == 0x2028 || cp == 0x2029) {
                buf_str(out, cp == 0x2028 ? "\\u2028" : "\\u2029");
                i += len;
            } else {
                buf_add(out, s + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
        case '\\': buf_str(out, "\\\\"); break;
        case '"': buf_str(out, "\\\""); break;
        case '\n': buf_str(out, "\\n"); break;
        case '\r': buf_str(out, "\\r"); break;
        case '<': buf_str(out, "\\u003c"); break;
        case '>': buf_str(out, "\\u003e"); break;
        case '&': buf_str(out, "\\u0026"); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', HEX[c >> 4], HEX[c & 15]};
                buf_add(out, esc, 6);
            } else {
                buf_add(out, &c, 1);
            }
        }
        i++;
    }
    buf_add(out, "\"", 1);
}

static void rfc3339_nano(struct buf *out, int64_t ns) {
    time_t sec = (time_t)(ns / 1000000000LL);
    long frac = (long)(ns % 1000000000LL);
    struct tm tm;
    char text[64];
    gmtime_r(&sec, &tm);
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_add(out, text, n);
    if (frac) {
        char digits[16];
        snprintf(digits, sizeof digits, ".%09ld", frac);
        size_t len = strlen(digits);
        while (digits[len - 1] == '0') len--;
        buf_add(out, digits, len);
    }
    buf_add(out, "Z", 1);
}

static int log_open(int truncate) {
    int fd = open(logw.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    if (fd < 0) die("opening the log");
    return fd;
}

static void log_rotate(void) {
    char a[4096], b[4096];
    close(logw.fd);
    if (logw.max_file < 2) {
        unlink(logw.path);
    } else {
        const char *exts[] = {"", ".gz"};
        for (int e = 0; e < 2; e++) {
            snprintf(a, sizeof a, "%s.%d%s", logw.path, logw.max_file - 1, exts[e]);
            unlink(a);
        }
        for (int i = logw.max_file - 1; i > 1; i--) {
            for (int e = 0; e < 2; e++) {
                snprintf(a, sizeof a, "%s.%d%s", logw.path, i - 1, exts[e]);
                snprintf(b, sizeof b, "%s.%d%s", logw.path, i, exts[e]);
                rename(a, b);
            }
        }
        snprintf(b, sizeof b, "%s.1", logw.path);
        rename(logw.path, b);
    }
    logw.fd = log_open(1);
    logw.size = 0;
}

/* append entries (one line each) to the file, rotating before a line that would pass max_size */
static void log_entry(struct buf *batch, int stream, const char *text, size_t n, int64_t ns) {
    struct buf line = {0};
    buf_str(&line, "{\"log\":");
    json_string(&line, text, n);
    buf_str(&line, stream == OUT ? ",\"stream\":\"stdout\",\"time\":\"" : ",\"stream\":\"stderr\",\"time\":\"");
    rfc3339_nano(&line, ns);
    buf_str(&line, "\"}\n");
    if (logw.max_size >= 0 && logw.size > 0 && logw.size + (int64_t)line.len > logw.max_size) {
        if (batch->len && write_all(logw.fd, batch->data, batch->len) < 0) die("writing the log");
        batch->len = 0;
        log_rotate();
    }
    buf_add(batch, line.data, line.len);
    logw.size += (int64_t)line.len;
    free(line.data);
}

static void log_write(int stream, const char *data, size_t n) {
    if (!logw.path) return;
    int64_t ns = now_ns();
    struct pending *p = &logw.streams[stream];
    buf_add(&p->text, data, n);
    struct buf batch = {0};
    size_t start = 0, len = p->text.len;
    const char *b = p->text.data;
    for (;;) {
        size_t window = len - start < PARTIAL_SIZE ? len - start : PARTIAL_SIZE;
        const char *nl = memchr(b + start, '\n', window);
        if (nl) {
            size_t end = (size_t)(nl - b) + 1;
            log_entry(&batch, stream, b + start, end - start, p->partial_ns ? p->partial_ns : ns);
            p->partial_ns = 0;
            start = end;
        } else if (len - start >= PARTIAL_SIZE) {
            if (!p->partial_ns) p->partial_ns = ns;
            log_entry(&batch, stream, b + start, PARTIAL_SIZE, p->partial_ns);
            start += PARTIAL_SIZE;
        } else {
            break;
        }
    }
    buf_drop(&p->text, start);
    p->seq = p->text.len ? ++logw.seq : 0; /* as a dict re-inserting the stream: the latest leftover comes last */
    if (batch.len && write_all(logw.fd, batch.data, batch.len) < 0) die("writing the log");
    free(batch.data);
}

static void log_close(void) {
    if (!logw.path || logw.fd < 0) return;
    int64_t ns = now_ns();
    for (;;) { /* what is left of unterminated lines, in the order it was left */
        int which = 0;
        for (int s = OUT; s <= ERR; s++)
            if (logw.streams[s].text.len && (!which || logw.streams[s].seq < logw.streams[which].seq)) which = s;
        if (!which) break;
        struct pending *p = &logw.streams[which];
        struct buf batch = {0};
        log_entry(&batch, which, p->text.data, p->text.len, p->partial_ns ? p->partial_ns : ns);
        if (batch.len && write_all(logw.fd, batch.data, batch.len) < 0) die("writing the log");
        free(batch.data);
        p->text.len = 0;
        p->partial_ns = 0;
    }
    close(logw.fd);
    logw.fd = -1;
}

/* ---- clients of the attach socket ---------------------------------------------------------------------------- */

struct client {
    int fd;
    int hello; /* the hello line was read */
    int out, err; /* it wants stdout, stderr (stdin: see `owner`) */
    struct buf buf;
};

static struct client *clients;
static size_t nclients;
static long owner = -1; /* the index of the client that owns the container's stdin */

static int pid, tty, stdin_once = 1;
static int out_fd = -1, err_fd = -1, stdin_fd = -1;

static void frame(struct buf *b, int kind, const char *data, size_t n) {
    unsigned char h[8] = {(unsigned char)kind, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    buf_add(b, h, 8);
    buf_add(b, data, n);
}

static void close_stdin(void) {
    if (tty) {
        if (stdin_fd >= 0) write_all(stdin_fd, "\x04", 1); /* EOF on a terminal is ^D */
        return;
    }
    if (stdin_fd >= 0 && stdin_once) {
        close(stdin_fd);
        stdin_fd = -1;
    }
}

static void drop(size_t i) {
    int was_owner = owner == (long)i;
    close(clients[i].fd);
    free(clients[i].buf.data);
    clients[i] = clients[--nclients];
    if (owner == (long)nclients) owner = (long)i; /* the last one moved into the gap */
    if (was_owner) {
        owner = -1;
        if (stdin_once && !tty) close_stdin();
    }
}

static int json_true(const char *line, const char *key) {
    /* the hello is written by barque's own client (json.dumps): `"key": true` */
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return 0;
    p += strlen(pat);
    while (*p == ' ') p++;
    return strncmp(p, "true", 4) == 0;
}

static void write_stdin(const char *data, size_t n) {
    if (stdin_fd < 0) return;
    set_blocking(stdin_fd, 1);
    write_all(stdin_fd, data, n);
    if (tty) set_blocking(stdin_fd, 0); /* the master is also the output */
}

static void client_frames(size_t i) {
    struct client *c = &clients[i];
    while (c->buf.len >= 8) {
        const unsigned char *h = (const unsigned char *)c->buf.data;
        size_t size = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) | h[7];
        if (c->buf.len < 8 + size) return;
        int kind = h[0];
        const char *payload = c->buf.data + 8;
        if (kind == STDIN_FRAME && owner == (long)i) {
            write_stdin(payload, size);
        } else if (kind == STDIN_CLOSE && owner == (long)i) {
            close_stdin();
        } else if (kind == RESIZE && tty && out_fd >= 0) {
            char text[64];
            unsigned rows, cols;
            size_t m = size < sizeof text - 1 ? size : sizeof text - 1;
            memcpy(text, payload, m);
            text[m] = 0;
            if (sscanf(text, "%u %u", &rows, &cols) == 2) {
                struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
                ioctl(out_fd, TIOCSWINSZ, &ws);
            }
        }
        buf_drop(&c->buf, 8 + size);
    }
}

static void on_hello(size_t i) {
    struct client *c = &clients[i];
    char *nl = memchr(c->buf.data, '\n', c->buf.len);
    if (!nl) return;
    *nl = 0;
    const char *line = c->buf.data;
    c->hello = 1;
    if (!json_true(line, "wait")) {
        c->out = json_true(line, "stdout");
        c->err = json_true(line, "stderr");
        if (json_true(line, "stdin") && stdin_fd >= 0 && owner < 0) owner = (long)i;
    }
    buf_drop(&c->buf, (size_t)(nl - c->buf.data) + 1);
    client_frames(i);
}

/* read from client i; returns 0 when it was dropped */
static int on_client(size_t i) {
    struct client *c = &clients[i];
    char data[READ_SIZE];
    ssize_t n = recv(c->fd, data, sizeof data, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
    if (n <= 0 || (!c->hello && c->buf.len + (size_t)n > MAX_HELLO)) {
        drop(i);
        return 0;
    }
    buf_add(&c->buf, data, (size_t)n);
    if (!c->hello) on_hello(i);
    else client_frames(i);
    return 1;
}

static void broadcast(int stream, const char *data, size_t n) {
    struct buf f = {0};
    frame(&f, stream, data, n);
    for (size_t i = 0; i < nclients;) {
        struct client *c = &clients[i];
        if (c->hello && ((stream == OUT && c->out) || (stream == ERR && c->err))) {
            set_blocking(c->fd, 1);
            int bad = write_all(c->fd, f.data, f.len) < 0;
            set_blocking(c->fd, 0);
            if (bad) {
                drop(i);
                continue;
            }
        }
        i++;
    }
    free(f.data);
}

/* ---- main ---------------------------------------------------------------------------------------------------- */

static int on_output(int *fd, int stream) {
    char data[READ_SIZE];
    ssize_t n = read(*fd, data, sizeof data);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
    if (n <= 0) { /* end of file, or EIO: the terminal's last holder is gone */
        if (*fd == stdin_fd) stdin_fd = -1;
        close(*fd);
        *fd = -1;
        return 0;
    }
    log_write(stream, data, (size_t)n);
    broadcast(stream, data, (size_t)n);
    return 1;
}

static int listen_at(const char *run_dir) {
    char path[4096];
    int dir = open(run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) die("opening the run directory");
    snprintf(path, sizeof path, "%s/attach.sock", run_dir);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    /* through /proc/self/fd: a socket path is limited to 108 bytes, the run directory's path is not */
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/attach.sock", dir);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("binding the attach socket");
    close(dir);
    chmod(path, 0600);
    if (listen(fd, 64) < 0) die("listen");
    return fd;
}

int main(int argc, char **argv) {
    const char *run_dir = NULL;
    int master_fd = -1, in_fd = -1, ready_fd = -1, i;
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "barque-monitor: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--pid")) pid = atoi(v);
        else if (!strcmp(k, "--stdout")) out_fd = atoi(v);
        else if (!strcmp(k, "--stderr")) err_fd = atoi(v);
        else if (!strcmp(k, "--stdin")) in_fd = atoi(v);
        else if (!strcmp(k, "--master")) master_fd = atoi(v);
        else if (!strcmp(k, "--tty")) tty = atoi(v);
        else if (!strcmp(k, "--stdin-once")) stdin_once = atoi(v);
        else if (!strcmp(k, "--run-dir")) run_dir = v;
        else if (!strcmp(k, "--log")) logw.path = *v ? v : NULL;
        else if (!strcmp(k, "--max-size")) logw.max_size = atoll(v);
        else if (!strcmp(k, "--max-file")) logw.max_file = atoi(v) < 1 ? 1 : atoi(v);
        else if (!strcmp(k, "--ready-fd")) ready_fd = atoi(v);
        else {
            fprintf(stderr, "barque-monitor: unknown option %s\n", k);
            return 2;
        }
    }
    if (!pid || !run_dir || i >= argc - 1) {
        fprintf(stderr, "barque-monitor: --pid, --run-dir and a finisher after -- are required\n");
        return 2;
    }
    char **finisher = argv + i + 1;
    int nfinisher = argc - i - 1;

    if (tty) {
        out_fd = master_fd;
        err_fd = -1;
        stdin_fd = master_fd;
    } else {
        stdin_fd = in_fd;
    }
    if (logw.path) {
        logw.fd = log_open(0);
        struct stat st;
        logw.size = fstat(logw.fd, &st) == 0 ? st.st_size : 0;
    }

    /* only the container's exit ends a monitor */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    int listener = listen_at(run_dir);
    if (out_fd >= 0) set_blocking(out_fd, 0);
    if (err_fd >= 0) set_blocking(err_fd, 0);
    /* the starter waits for the end of this pipe: from here on the container's output is copied */
    if (ready_fd >= 0) close(ready_fd);

    int status = -1;
    int64_t exited_at = 0;
    for (;;) {
        /* reap: the container, and whatever else this subreaper inherited */
        for (;;) {
            int st;
            pid_t got = waitpid(-1, &st, WNOHANG);
            if (got <= 0) break;
            if (got == pid && status < 0) {
                status = st;
                exited_at = mono_ns();
            }
        }
        int timeout = -1;
        if (status >= 0) {
            if ((out_fd < 0 && err_fd < 0) || mono_ns() - exited_at > DRAIN_NS) break;
            timeout = 50;
        }
        size_t n = 0;
        struct pollfd *pfds = xrealloc(NULL, sizeof *pfds * (4 + nclients));
        pfds[n++] = (struct pollfd){sfd, POLLIN, 0};
        pfds[n++] = (struct pollfd){listener, POLLIN, 0};
        pfds[n++] = (struct pollfd){out_fd, POLLIN, 0};
        pfds[n++] = (struct pollfd){err_fd, POLLIN, 0};
        for (size_t k = 0; k < nclients; k++) pfds[n++] = (struct pollfd){clients[k].fd, POLLIN, 0};
        int r = poll(pfds, n, timeout);
        if (r < 0 && errno != EINTR) die("poll");
        if (r > 0) {
            if (pfds[0].revents) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == sizeof si) {
                }
            }
            if (pfds[2].revents && out_fd >= 0) on_output(&out_fd, OUT);
            if (pfds[3].revents && err_fd >= 0) on_output(&err_fd, ERR);
            /* clients in the poll set: they were at the same index then, but drops reorder the array, so find
               each one by its descriptor */
            for (size_t k = 4; k < n; k++) {
                if (!pfds[k].revents) continue;
                for (size_t j = 0; j < nclients; j++) {
                    if (clients[j].fd == pfds[k].fd) {
                        on_client(j);
                        break;
                    }
                }
            }
            if (pfds[1].revents) {
                int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd >= 0) {
                    clients = xrealloc(clients, sizeof *clients * (nclients + 1));
                    clients[nclients++] = (struct client){.fd = fd};
                }
            }
        }
        free(pfds);
    }

    /* the end: output drained (or the drain timed out), the log closed, the socket gone; the finisher records the
       exit and answers the clients that said hello */
    if (out_fd >= 0) close(out_fd);
    if (err_fd >= 0) close(err_fd);
    if (stdin_fd >= 0 && stdin_fd != out_fd) close(stdin_fd);
    log_close();
    close(listener);
    char path[4096];
    snprintf(path, sizeof path, "%s/attach.sock", run_dir);
    unlink(path);
    close(sfd);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);

    char **args = xrealloc(NULL, sizeof *args * ((size_t)nfinisher + 2 + nclients + 1));
    int a = 0;
    for (int k = 0; k < nfinisher; k++) args[a++] = finisher[k];
    char code[32];
    snprintf(code, sizeof code, "%d", status);
    args[a++] = code;
    for (size_t k = 0; k < nclients; k++) {
        if (!clients[k].hello) {
            close(clients[k].fd);
            continue;
        }
        set_blocking(clients[k].fd, 1);
        fcntl(clients[k].fd, F_SETFD, 0); /* inherited by the finisher */
        char *fd = xrealloc(NULL, 16);
        snprintf(fd, 16, "%d", clients[k].fd);
        args[a++] = fd;
    }
    args[a] = NULL;
    execv(args[0], args);
    die("executing the finisher");
    return 1;
}
