/* repl_server.c: the console socket of `serve` and the `attach` client
 * (repl.h).
 *
 * Line protocol, both ways newline-terminated: the client sends input
 * lines; the server answers with output lines, then a prompt line: the
 * byte 0x02 followed by the prompt text ("> " or ">> "). A client that
 * reads up to the next 0x02 line has the whole answer to its line. Lines
 * that arrive while a console waits for the broker are queued in order.
 * At any time the server may also send a notice line: the byte 0x03 and
 * one line of text (a fill, a risk rejection, the kill switch; see
 * im_repl_notice). The server holds one session listener for all its
 * consoles (the session has room for only a few) and writes each notice
 * to every console as a whole line, so it never splits an answer's line.
 * The `attach` client prints notices on its stderr, so piped output stays
 * the answers alone; on a terminal it redraws the line being typed.
 *
 * The socket is a unix socket, mode 0600, in a directory created 0700:
 * anyone who can open it can halt, resume and place with a token, so the
 * server opens it only when IBKR_REPL=true. Nothing here writes to stdout
 * (it carries JSON-RPC in `serve`), except the `attach` client, whose
 * stdout is the operator's terminal. */
#include "repl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <editline/readline.h>

#include "error.h"
#include "fsutil.h"
#include "log.h"

#define REPL_PROMPT_MARK '\x02'
#define REPL_NOTICE_MARK '\x03'
#define REPL_LINE_MAX (64 * 1024)   /* longest console input line */
#define REPL_SOCK_NAME "repl.sock"

typedef struct repl_conn repl_conn;

struct im_repl_server {
    uv_loop_t *loop;
    im_app *app;
    uv_pipe_t listener;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    repl_conn *conns;
    int open_handles;     /* listener + connections not yet closed */
    int closing;
    int listening;        /* the session listener is registered */
    unsigned next_id;
};

struct repl_conn {
    uv_pipe_t pipe;       /* first: the close callback casts back */
    im_repl_server *srv;
    im_repl_console *console;
    repl_conn *next;
    char *in;
    size_t in_len, in_cap;
    int eof;
    int closing;
};

typedef struct repl_wreq {
    uv_write_t req;
    char data[];
} repl_wreq;

/* ---- connections ------------------------------------------------------------- */

static void repl_srv_maybe_free(im_repl_server *srv) {
    if (srv->closing && srv->open_handles == 0)
        free(srv);
}

static void repl_conn_write_cb(uv_write_t *req, int status) {
    (void)status;
    free(container_of(req, repl_wreq, req));
}

static void repl_conn_send(repl_conn *k, const char *text, size_t len) {
    repl_wreq *w;
    uv_buf_t buf;
    if (k->closing || len == 0)
        return;
    w = malloc(sizeof *w + len);
    if (w == NULL)
        return;
    memcpy(w->data, text, len);
    buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&k->pipe, &buf, 1, repl_conn_write_cb) != 0)
        free(w);
}

static void repl_conn_write(void *ud, const char *text, size_t len) {
    repl_conn_send(ud, text, len);
}

static void repl_conn_prompt(repl_conn *k) {
    char buf[8];
    int n = snprintf(buf, sizeof buf, "%c%s\n", REPL_PROMPT_MARK,
                     im_repl_console_prompt(k->console));
    repl_conn_send(k, buf, (size_t)n);
}

static void repl_conn_close_cb(uv_handle_t *h) {
    repl_conn *k = (repl_conn *)h;
    im_repl_server *srv = k->srv;
    free(k->in);
    free(k);
    srv->open_handles--;
    repl_srv_maybe_free(srv);
}

static void repl_conn_close(repl_conn *k) {
    im_repl_server *srv = k->srv;
    if (k->closing)
        return;
    k->closing = 1;
    for (repl_conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    im_debug("console %p detached", (void *)k);
    im_repl_console_free(k->console);   /* deferred while it waits */
    k->console = NULL;
    uv_close((uv_handle_t *)&k->pipe, repl_conn_close_cb);
}

/* Evaluates every complete line queued, stopping at one that waits. */
static void repl_conn_pump(repl_conn *k) {
    while (!k->closing && !im_repl_console_busy(k->console)) {
        char *nl = memchr(k->in, '\n', k->in_len);
        size_t len, used;
        int rc;
        if (nl == NULL)
            break;
        len = (size_t)(nl - k->in);
        used = len + 1;
        if (len > 0 && k->in[len - 1] == '\r')
            len--;
        rc = im_repl_console_feed(k->console, k->in, len);
        memmove(k->in, k->in + used, k->in_len - used);
        k->in_len -= used;
        if (rc == 1)
            return;   /* the done callback prompts and pumps again */
        repl_conn_prompt(k);
    }
    if (!k->closing && k->eof && !im_repl_console_busy(k->console))
        repl_conn_close(k);
}

static void repl_conn_done(void *ud) {
    repl_conn *k = ud;
    repl_conn_prompt(k);
    repl_conn_pump(k);
}

static void repl_conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    repl_conn *k = (repl_conn *)h;
    (void)hint;
    if (k->in_cap - k->in_len < 4096) {
        size_t cap = k->in_cap ? k->in_cap * 2 : 8192;
        char *p = realloc(k->in, cap);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        k->in = p;
        k->in_cap = cap;
    }
    *buf = uv_buf_init(k->in + k->in_len, (unsigned)(k->in_cap - k->in_len));
}

static void repl_conn_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    repl_conn *k = (repl_conn *)st;
    (void)buf;
    if (n < 0) {
        uv_read_stop(st);
        k->eof = 1;
        repl_conn_pump(k);
        return;
    }
    k->in_len += (size_t)n;
    if (k->in_len > REPL_LINE_MAX && memchr(k->in, '\n', k->in_len) == NULL) {
        static const char msg[] = "error: input line too long; disconnecting\n";
        repl_conn_send(k, msg, sizeof msg - 1);
        repl_conn_close(k);
        return;
    }
    repl_conn_pump(k);
}

static void repl_srv_connection_cb(uv_stream_t *server, int status) {
    im_repl_server *srv = container_of((uv_pipe_t *)server, im_repl_server, listener);
    repl_conn *k;
    im_repl_console_opts o;
    char origin[96];
    struct ucred cred;
    socklen_t clen = sizeof cred;
    uv_os_fd_t fd;

    if (status != 0 || srv->closing)
        return;
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return;
    k->srv = srv;
    uv_pipe_init(srv->loop, &k->pipe, 0);
    srv->open_handles++;
    if (uv_accept(server, (uv_stream_t *)&k->pipe) != 0) {
        k->closing = 1;
        uv_close((uv_handle_t *)&k->pipe, repl_conn_close_cb);
        return;
    }
    srv->next_id++;
    if (uv_fileno((uv_handle_t *)&k->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        snprintf(origin, sizeof origin, "attach#%u (pid %ld, uid %ld)", srv->next_id,
                 (long)cred.pid, (long)cred.uid);
    else
        snprintf(origin, sizeof origin, "attach#%u", srv->next_id);
    memset(&o, 0, sizeof o);
    o.app = srv->app;
    o.origin = origin;
    o.local = 0;
    o.write = repl_conn_write;
    o.done = repl_conn_done;
    o.ud = k;
    if (im_repl_console_new(&o, &k->console) != 0) {
        k->closing = 1;
        uv_close((uv_handle_t *)&k->pipe, repl_conn_close_cb);
        return;
    }
    k->next = srv->conns;
    srv->conns = k;
    im_debug("console %s attached", origin);
    {
        char banner[200];
        int n = snprintf(banner, sizeof banner,
                         "ibkr-mcp console inside the running server (%s). help() lists the "
                         "commands.\n", origin);
        repl_conn_send(k, banner, (size_t)n);
    }
    repl_conn_prompt(k);
    uv_read_start((uv_stream_t *)&k->pipe, repl_conn_alloc_cb, repl_conn_read_cb);
}

/* The session listener: one notice line to every console attached. */
static void repl_srv_event(void *ud, const im_session_event *ev) {
    im_repl_server *srv = ud;
    char line[1024];
    size_t l;
    if (srv->closing || srv->conns == NULL || !im_repl_notice(ev, line + 1, sizeof line - 2))
        return;
    line[0] = REPL_NOTICE_MARK;
    l = strlen(line);
    line[l++] = '\n';
    for (repl_conn *k = srv->conns; k; k = k->next)
        repl_conn_send(k, line, l);
}

/* ---- the listener ---------------------------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates. */
static int repl_mkdirs(const char *dir) {
    char buf[1024];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return IM_EINVAL;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char ch = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return IM_EIO;
            buf[i] = ch;
        }
    }
    return 0;
}

/* 1 when a server answers on path, 0 when nobody does. */
static int repl_sock_live(const char *path) {
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;
    if (fd < 0)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return live;
}

static void repl_listener_close_cb(uv_handle_t *h) {
    im_repl_server *srv = container_of((uv_pipe_t *)h, im_repl_server, listener);
    srv->open_handles--;
    repl_srv_maybe_free(srv);
}

int im_repl_server_start(uv_loop_t *loop, im_app *app, const char *dir, im_repl_server **out,
                         char *err, size_t errlen) {
    im_repl_server *srv;
    struct stat st;
    mode_t old;
    int rc;

    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, errlen, "no state directory for the console socket (set IBKR_STATE_DIR)");
        return IM_EINVAL;
    }
    srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return IM_ENOMEM;
    }
    if ((size_t)snprintf(srv->path, sizeof srv->path, "%s/%s", dir, REPL_SOCK_NAME) >=
        sizeof srv->path) {
        snprintf(err, errlen, "console socket path too long: %s/%s", dir, REPL_SOCK_NAME);
        free(srv);
        return IM_ETOOBIG;
    }
    if (repl_mkdirs(dir) != 0) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", dir, strerror(errno));
        free(srv);
        return IM_EIO;
    }
    if (lstat(srv->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; not replacing it", srv->path);
            free(srv);
            return IM_EEXIST;
        }
        if (repl_sock_live(srv->path)) {
            snprintf(err, errlen, "another server is listening on %s", srv->path);
            free(srv);
            return IM_EBUSY;
        }
        im_info("replacing the stale console socket %s", srv->path);
        unlink(srv->path);
    }
    srv->loop = loop;
    srv->app = app;
    uv_pipe_init(loop, &srv->listener, 0);
    srv->open_handles = 1;
    old = umask(0177);   /* the socket is born 0600: no window for others */
    rc = uv_pipe_bind(&srv->listener, srv->path);
    umask(old);
    if (rc == 0 && chmod(srv->path, 0600) != 0)
        rc = UV_EPERM;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 16, repl_srv_connection_cb);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", srv->path, uv_strerror(rc));
        unlink(srv->path);
        srv->closing = 1;
        uv_close((uv_handle_t *)&srv->listener, repl_listener_close_cb);
        return IM_EIO;
    }
    if (im_session_add_listener(app->session, repl_srv_event, srv) == 0)
        srv->listening = 1;
    else
        im_warn("console: no room for another session listener; consoles get no notices");
    *out = srv;
    return 0;
}

void im_repl_server_close(im_repl_server *srv) {
    if (srv == NULL || srv->closing)
        return;
    srv->closing = 1;
    if (srv->listening)
        im_session_remove_listener(srv->app->session, repl_srv_event, srv);
    srv->listening = 0;
    while (srv->conns)
        repl_conn_close(srv->conns);
    unlink(srv->path);
    uv_close((uv_handle_t *)&srv->listener, repl_listener_close_cb);
}

/* ---- `ibkr-mcp attach` -------------------------------------------------------------- */

static const char *repl_attach_getenv(const char *name) { return getenv(name); }

/* The client's state. The server paces the conversation: one input line
 * may go out after each prompt mark, so stdin is read only while a prompt
 * is open, and the socket is read all the time (notices come whenever
 * they happen). On a terminal libedit's callback interface edits the line
 * (it returns after each key, so a notice can be printed while the
 * operator types and the line redrawn); piped input is split into lines
 * here, exactly as getline would, and never touches libedit. */
typedef struct repl_attach {
    int fd;
    int tty;
    int at_prompt;          /* the server waits for one line */
    int quit;               /* stdin ended at a prompt, or the socket broke */
    char *acc;              /* the server's line being assembled */
    size_t llen, lcap;
    char *in;               /* piped stdin not yet sent */
    size_t in_len, in_cap;
    int in_eof;
    int rl_active;          /* libedit's handler is installed (terminal in raw mode) */
    int rl_done;            /* the handler delivered a line (or EOF) */
    char *rl_line;
} repl_attach;

static repl_attach *g_attach;   /* for libedit's handler, which has no user data */
static volatile sig_atomic_t g_attach_signal;

/* On a terminal libedit keeps the terminal in raw mode between keys, so a
 * signal must not kill the client outright: it ends the loop, which puts
 * the terminal back first. */
static void repl_attach_on_signal(int sig) { g_attach_signal = sig; }

static void repl_attach_rl_line(char *line) {
    g_attach->rl_done = 1;
    g_attach->rl_line = line;
}

static void repl_attach_rl_stop(repl_attach *a) {
    if (a->rl_active) {
        rl_callback_handler_remove();   /* back to cooked mode */
        a->rl_active = 0;
    }
}

/* Sends one input line (a newline is added). */
static void repl_attach_send(repl_attach *a, const char *line, size_t len) {
    a->at_prompt = 0;
    if (im_fs_write_all(a->fd, line, len) != 0 || im_fs_write_all(a->fd, "\n", 1) != 0)
        a->quit = 1;
}

/* Piped input: sends the next whole line when the server waits for one;
 * at the end of input a last unterminated line still goes, then we stop. */
static void repl_attach_pump_piped(repl_attach *a) {
    char *nl;
    size_t len;
    if (!a->at_prompt || a->quit)
        return;
    nl = a->in_len ? memchr(a->in, '\n', a->in_len) : NULL;
    if (nl == NULL && !a->in_eof)
        return;
    if (nl == NULL && a->in_len == 0) {
        a->quit = 1;
        return;
    }
    len = nl ? (size_t)(nl - a->in) : a->in_len;
    repl_attach_send(a, a->in, len);
    len += nl ? 1 : 0;
    memmove(a->in, a->in + len, a->in_len - len);
    a->in_len -= len;
}

static void repl_attach_read_stdin(repl_attach *a) {
    ssize_t n;
    if (a->tty) {
        a->rl_done = 0;
        rl_callback_read_char();
        if (!a->rl_done)
            return;
        repl_attach_rl_stop(a);
        if (a->rl_line == NULL) {   /* Ctrl-D */
            fputs("\n", stdout);    // stdout-ok: attach's terminal
            a->quit = 1;
            return;
        }
        if (a->rl_line[strspn(a->rl_line, " \t")] != '\0')
            add_history(a->rl_line);
        repl_attach_send(a, a->rl_line, strlen(a->rl_line));
        free(a->rl_line);
        a->rl_line = NULL;
        return;
    }
    if (a->in_cap - a->in_len < 4096) {
        size_t cap = a->in_cap ? a->in_cap * 2 : 8192;
        char *p = realloc(a->in, cap);
        if (p == NULL) {
            a->quit = 1;
            return;
        }
        a->in = p;
        a->in_cap = cap;
    }
    n = read(0, a->in + a->in_len, a->in_cap - a->in_len);
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0)
        a->in_eof = 1;
    else
        a->in_len += (size_t)n;
    repl_attach_pump_piped(a);
}

/* One whole line from the server (with its newline) in a->acc. */
static void repl_attach_server_line(repl_attach *a) {
    char *l = a->acc;
    size_t n = a->llen;
    if (l[0] == REPL_PROMPT_MARK) {
        a->at_prompt = 1;
        if (a->tty) {
            char prompt[16];
            snprintf(prompt, sizeof prompt, "%.*s", (int)(n - 2), l + 1);
            fflush(stdout);   // stdout-ok: attach's terminal
            rl_callback_handler_install(prompt, repl_attach_rl_line);
            a->rl_active = 1;
        } else {
            repl_attach_pump_piped(a);
        }
    } else if (l[0] == REPL_NOTICE_MARK) {
        /* On a terminal, off the line being typed, then redraw it. */
        fflush(stdout);   // stdout-ok: attach's terminal
        if (a->rl_active)
            fputs("\n", stderr);
        fwrite(l + 1, 1, n - 1, stderr);
        fflush(stderr);
        if (a->rl_active)
            rl_forced_update_display();
    } else {
        fwrite(l, 1, n, stdout);   // stdout-ok: attach's terminal
        fflush(stdout);            // stdout-ok
    }
}

static int repl_attach_read_socket(repl_attach *a) {
    char buf[4096];
    ssize_t n = read(a->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0)
        return -1;   /* the server went away */
    for (ssize_t i = 0; i < n; i++) {
        if (a->llen + 1 >= a->lcap) {
            size_t ncap = a->lcap ? a->lcap * 2 : 256;
            char *p = realloc(a->acc, ncap);
            if (p == NULL)
                return -1;
            a->acc = p;
            a->lcap = ncap;
        }
        a->acc[a->llen++] = buf[i];
        if (buf[i] != '\n')
            continue;
        repl_attach_server_line(a);
        a->llen = 0;
    }
    return 0;
}

int im_repl_attach(const char *path) {
    char defpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct sockaddr_un sa;
    repl_attach a;
    sigset_t block, during_poll;
    int fd, rc = 0;

    if (path == NULL) {
        im_config cfg;
        char err[256];
        im_config_defaults(&cfg);
        if (im_config_load(&cfg, repl_attach_getenv, err, sizeof err) != 0) {
            fprintf(stderr, "ibkr-mcp: %s\n", err);
            return 2;
        }
        if ((size_t)snprintf(defpath, sizeof defpath, "%s/%s", cfg.state_dir, REPL_SOCK_NAME) >=
            sizeof defpath) {
            fprintf(stderr, "ibkr-mcp: the console socket path is too long\n");
            return 2;
        }
        path = defpath;
    }
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "ibkr-mcp: socket path too long: %s\n", path);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "ibkr-mcp: cannot attach to %s: %s (is the server running with "
                        "IBKR_REPL=true?)\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    memset(&a, 0, sizeof a);
    a.fd = fd;
    a.tty = isatty(0);
    g_attach = &a;
    /* The signals are blocked except inside ppoll, so one cannot slip in
     * between the check of the flag and the wait. */
    sigemptyset(&block);
    sigprocmask(SIG_BLOCK, NULL, &during_poll);
    if (a.tty) {
        struct sigaction act;
        stifle_history(1000);   /* in memory only: a line may hold a token */
        memset(&act, 0, sizeof act);
        act.sa_handler = repl_attach_on_signal;
        sigemptyset(&act.sa_mask);   /* no SA_RESTART: ppoll returns EINTR */
        sigaction(SIGINT, &act, NULL);
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGHUP, &act, NULL);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        sigprocmask(SIG_BLOCK, &block, &during_poll);
    }
    while (!a.quit) {
        struct pollfd p[2];
        nfds_t np = 1;
        p[0].fd = fd;
        p[0].events = POLLIN;
        if (a.at_prompt && (a.tty || !a.in_eof)) {
            p[1].fd = 0;
            p[1].events = POLLIN;
            np = 2;
        }
        if (g_attach_signal != 0) {
            if (a.rl_active)
                fputs("\n", stdout);   // stdout-ok: attach's terminal
            rc = 1;
            break;
        }
        if (ppoll(p, np, NULL, &during_poll) == -1) {
            if (errno == EINTR)
                continue;
            rc = 1;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (repl_attach_read_socket(&a) != 0)
                break;
            continue;   /* the prompt state may have changed */
        }
        if (np == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            repl_attach_read_stdin(&a);
    }
    repl_attach_rl_stop(&a);
    sigprocmask(SIG_SETMASK, &during_poll, NULL);
    g_attach = NULL;
    free(a.rl_line);
    free(a.acc);
    free(a.in);
    close(fd);
    return rc;
}
