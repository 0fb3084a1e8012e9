/* The floor for the round-trip benchmark: a bare stdio JSON-RPC responder.
 * It reads newline-delimited requests with read(2), answers every line that
 * carries an "id" with a canned reply of the same bytes ibkr-mcp sends for
 * initialize and for tools/call get_quote NVDA (the id copied textually, no
 * JSON parsing), ignores notifications, and writes all the replies to one
 * read batch with a single write(2). No event loop, no allocation per line.
 *
 * Built by tests/bench/run.sh: cc -O2 -o BUILD/bench-echo tests/bench/echo.c */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char INIT_REPLY[] =
    "\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{\"listChanged\":"
    "false}},\"serverInfo\":{\"name\":\"bench-echo\",\"version\":\"0.1.0\"}}}\n";
static const char QUOTE_REPLY[] =
    "\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"ask\\\":167.97,\\\"ask_size\\\":500,"
    "\\\"bid\\\":167.93,\\\"bid_size\\\":500,\\\"delayed\\\":false,\\\"last\\\":167.95,\\\"mid\\\":"
    "167.95,\\\"symbol\\\":\\\"NVDA\\\",\\\"time\\\":\\\"2025-06-10T14:00:00.000Z\\\"}\"}],"
    "\"structuredContent\":{\"ask\":167.97,\"ask_size\":500,\"bid\":167.93,\"bid_size\":500,"
    "\"delayed\":false,\"last\":167.95,\"mid\":167.95,\"symbol\":\"NVDA\",\"time\":"
    "\"2025-06-10T14:00:00.000Z\"}}}\n";
static const char HEAD[] = "{\"jsonrpc\":\"2.0\",\"id\":";

static char *out;
static size_t outlen, outcap;

static void put(const char *p, size_t n) {
    if (outlen + n > outcap) {
        while (outlen + n > outcap)
            outcap = outcap ? outcap * 2 : 1 << 16;
        out = realloc(out, outcap);
        if (out == NULL)
            _exit(1);
    }
    memcpy(out + outlen, p, n);
    outlen += n;
}

static void flush_out(void) {
    size_t off = 0;
    while (off < outlen) {
        ssize_t w = write(1, out + off, outlen - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        off += (size_t)w;
    }
    outlen = 0;
}

/* One request line (without its newline). */
static void answer(const char *line, size_t n) {
    const char *id = memmem(line, n, "\"id\":", 5), *end;
    if (id == NULL)
        return; /* a notification */
    id += 5;
    end = id;
    while (end < line + n && *end != ',' && *end != '}')
        end++;
    put(HEAD, sizeof HEAD - 1);
    put(id, (size_t)(end - id));
    put(",", 1);
    if (memmem(line, n, "\"initialize\"", 12) != NULL)
        put(INIT_REPLY, sizeof INIT_REPLY - 1);
    else
        put(QUOTE_REPLY, sizeof QUOTE_REPLY - 1);
}

int main(void) {
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 1;
    for (;;) {
        ssize_t r;
        size_t start = 0;
        char *nl;
        if (len == cap && (buf = realloc(buf, cap *= 2)) == NULL)
            return 1;
        r = read(0, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        while ((nl = memchr(buf + start, '\n', len - start)) != NULL) {
            answer(buf + start, (size_t)(nl - (buf + start)));
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        flush_out();
    }
    flush_out();
    return 0;
}
