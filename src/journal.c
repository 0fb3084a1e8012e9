/* journal.c: the durable journal (journal.h).
 *
 * Every append opens the day's file, takes an exclusive flock, reads what
 * other processes appended since this one last looked (so its counters
 * stay whole), writes one line, fsyncs and closes, which drops the lock.
 * Opening per append keeps the day rollover and a directory that comes
 * back after a failure simple, and costs one open(2) per event. The fsync
 * is the one bounded blocking call the loop makes (DESIGN section 3).
 * Readers take a shared lock, so they never see half a line that a live
 * writer is still writing: a line without its newline under the lock can
 * only be the remains of a crash. */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "jsonw.h"
#include "log.h"
#include "text.h"

#define JOURNAL_PREFIX "journal-"
#define JOURNAL_SUFFIX ".jsonl"
/* "journal-" + "YYYY-MM-DD" + ".jsonl" */
#define JOURNAL_NAME_LEN 24

struct im_journal {
    char dir[1024];
    char path[1100];
    off_t offset;          /* bytes of path already read */
    im_journal_state st;
    char (*tokens)[IM_JOURNAL_HASH_HEX];   /* redeemed token hashes, today */
    size_t ntokens, captokens;
    im_journal_sent *sent;     /* today's order_sent records */
    size_t nsent, capsent;
    char (*unacked)[IM_ORDER_REF_MAX];   /* sent, not yet answered */
    size_t nunacked, capunacked;
    int halt_only;         /* reading an earlier day: only the kill switch */
    int defer_sync;        /* appends skip their fsync (im_journal_defer_sync) */
    char unsynced[1100];   /* a file written without its fsync, or "" */
    int failed;
    char err[1400];
};

static void journal_fail(im_journal *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void journal_fail(im_journal *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
    j->failed = 1;
}

void im_journal_token_hash(const char *token, char out[IM_JOURNAL_HASH_HEX]) {
    unsigned char h[32];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(out, IM_JOURNAL_HASH_HEX, h, sizeof h);
}

static void journal_set_day(im_journal *j, const char *day) {
    snprintf(j->st.day, sizeof j->st.day, "%s", day);
    snprintf(j->path, sizeof j->path, "%s/" JOURNAL_PREFIX "%s" JOURNAL_SUFFIX, j->dir, day);
    j->offset = 0;
    j->st.orders = 0;
    j->st.notional = 0;
    j->ntokens = 0;
    j->nsent = 0;
    j->nunacked = 0;
}

/* Tracks an order_sent (add) or its answer (remove) by orderRef. */
static void journal_track_ref(im_journal *j, const cJSON *rec, int add) {
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(rec, "order_ref");
    if (!cJSON_IsString(ref) || ref->valuestring[0] == '\0')
        return;
    for (size_t i = 0; i < j->nunacked; i++) {
        if (strcmp(j->unacked[i], ref->valuestring) == 0) {
            if (!add)
                memmove(j->unacked[i], j->unacked[i + 1],
                        (j->nunacked - i - 1) * sizeof *j->unacked);
            j->nunacked -= !add;
            return;
        }
    }
    if (!add)
        return;
    if (j->nunacked == j->capunacked) {
        size_t cap = j->capunacked ? j->capunacked * 2 : 16;
        void *p = realloc(j->unacked, cap * sizeof *j->unacked);
        if (p == NULL)
            return;
        j->unacked = p;
        j->capunacked = cap;
    }
    snprintf(j->unacked[j->nunacked++], IM_ORDER_REF_MAX, "%s", ref->valuestring);
}

const char (*im_journal_unacked(const im_journal *j, size_t *n))[IM_ORDER_REF_MAX] {
    *n = j->nunacked;
    return (const char (*)[IM_ORDER_REF_MAX])j->unacked;
}

/* Reads an order_sent record's time and order into the list. A record
 * whose order cannot be read still counts, with an empty order (it then
 * matches no duplicate, but every rate window). */
static void journal_add_sent(im_journal *j, const cJSON *rec) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "t");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(rec, "order");
    const cJSON *v;
    im_journal_sent *e;
    if (j->nsent == j->capsent) {
        size_t cap = j->capsent ? j->capsent * 2 : 64;
        void *p = realloc(j->sent, cap * sizeof *j->sent);
        if (p == NULL)
            return;
        j->sent = p;
        j->capsent = cap;
    }
    e = &j->sent[j->nsent++];
    memset(e, 0, sizeof *e);
    /* Without a time, assume now-ish: the far future keeps it inside
     * every window (fail closed). */
    e->t = cJSON_IsNumber(t) ? t->valuedouble : 1e18;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "symbol")) && cJSON_IsString(v))
        snprintf(e->order.symbol, sizeof e->order.symbol, "%s", v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "side")) && cJSON_IsString(v))
        im_side_parse(v->valuestring, &e->order.side);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "quantity")) && cJSON_IsNumber(v))
        e->order.quantity = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "type")) && cJSON_IsString(v))
        im_order_type_parse(v->valuestring, &e->order.type);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "limit_price")) && cJSON_IsNumber(v))
        e->order.limit_price = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "stop_price")) && cJSON_IsNumber(v))
        e->order.stop_price = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "tif")) && cJSON_IsString(v))
        im_tif_parse(v->valuestring, &e->order.tif);
}

const im_journal_sent *im_journal_sent_list(const im_journal *j, size_t *n) {
    *n = j->nsent;
    return j->sent;
}

static void journal_add_token(im_journal *j, const char *hex) {
    if (strlen(hex) != IM_JOURNAL_HASH_HEX - 1 || im_journal_token_used(j, hex))
        return;
    if (j->ntokens == j->captokens) {
        size_t cap = j->captokens ? j->captokens * 2 : 64;
        void *p = realloc(j->tokens, cap * sizeof *j->tokens);
        if (p == NULL)
            return;   /* tokens live in memory only: a lost hash revives nothing */
        j->tokens = p;
        j->captokens = cap;
    }
    memcpy(j->tokens[j->ntokens++], hex, IM_JOURNAL_HASH_HEX);
}

/* The kinds of record journal_apply reads; the others (previews, fills,
 * start-ups, ...) change nothing it keeps. */
enum jkind {
    JK_OTHER,
    JK_HALT,
    JK_RESUME,
    JK_ORDER_SENT,
    JK_ORDER_ACK,
    JK_PLACE_ERROR,
    JK_RECONCILED,
    JK_PLACE_REJECT,
    JK_REDEEM,
};

static const struct {
    const char *name;
    enum jkind kind;
} journal_kinds[] = {
    {"halt", JK_HALT},           {"resume", JK_RESUME},         {"order_sent", JK_ORDER_SENT},
    {"order_ack", JK_ORDER_ACK}, {"place_error", JK_PLACE_ERROR}, {"reconciled", JK_RECONCILED},
    {"place_reject", JK_PLACE_REJECT}, {"redeem", JK_REDEEM},
};

static enum jkind journal_kind(const char *k, size_t n) {
    for (size_t i = 0; i < IM_ARRAY_SIZE(journal_kinds); i++)
        if (strlen(journal_kinds[i].name) == n && memcmp(journal_kinds[i].name, k, n) == 0)
            return journal_kinds[i].kind;
    return JK_OTHER;
}

/* Whether a record of kind k changes the state (an earlier day's file is
 * read for the kill switch only). */
static int journal_applies(const im_journal *j, enum jkind k) {
    return j->halt_only ? k == JK_HALT || k == JK_RESUME : k != JK_OTHER;
}

/* Applies one record to the state. */
static void journal_apply(im_journal *j, const cJSON *rec) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rec, "kind");
    const char *ks = cJSON_IsString(kind) ? kind->valuestring : "";
    enum jkind k = journal_kind(ks, strlen(ks));

    if (!journal_applies(j, k))
        return;
    switch (k) {
    case JK_HALT: {
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(rec, "reason");
        j->st.halted = 1;
        j->st.halts++;
        im_text_copy(j->st.halt_reason, sizeof j->st.halt_reason,
                     cJSON_IsString(why) ? why->valuestring : "halted (no reason recorded)");
        break;
    }
    case JK_RESUME:
        j->st.halted = 0;
        j->st.halt_reason[0] = '\0';
        j->st.consecutive_rejects = 0;
        break;
    case JK_ORDER_SENT: {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(rec, "notional");
        j->st.orders++;
        if (cJSON_IsNumber(n))
            j->st.notional += n->valuedouble;
        journal_add_sent(j, rec);
        journal_track_ref(j, rec, 1);
        break;
    }
    case JK_ORDER_ACK: {
        /* The consecutive-reject breaker: a broker rejection counts, an
         * accepted order resets the run. */
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "status");
        journal_track_ref(j, rec, 0);
        if (cJSON_IsString(st) && strcmp(st->valuestring, "REJECTED") == 0)
            j->st.consecutive_rejects++;
        else
            j->st.consecutive_rejects = 0;
        break;
    }
    case JK_PLACE_ERROR:
        journal_track_ref(j, rec, 0);
        j->st.consecutive_rejects++;
        break;
    case JK_RECONCILED:
        journal_track_ref(j, rec, 0);
        break;
    case JK_PLACE_REJECT:
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "breaker")))
            j->st.consecutive_rejects++;
        break;
    case JK_REDEEM: {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(rec, "token_hash");
        if (cJSON_IsString(h))
            journal_add_token(j, h->valuestring);
        break;
    }
    case JK_OTHER:
        break;
    }
}

/* A line as the journal writes it begins {"time":"...","t":N,"kind":"K";
 * its kind then comes without a parse. 0 with *kind set, or -1 for a line
 * that begins any other way (a K with escapes or capitals among them). */
static int journal_line_kind(const char *p, size_t n, enum jkind *kind) {
    static const char head[] = "{\"time\":\"", t[] = "\",\"t\":", k[] = ",\"kind\":\"";
    const char *e = p + n, *q;
    if (n < sizeof head - 1 || memcmp(p, head, sizeof head - 1) != 0)
        return -1;
    p += sizeof head - 1;
    q = memchr(p, '"', (size_t)(e - p));
    if (q == NULL || memchr(p, '\\', (size_t)(q - p)) != NULL)
        return -1;
    p = q;
    if ((size_t)(e - p) < sizeof t - 1 || memcmp(p, t, sizeof t - 1) != 0)
        return -1;
    p += sizeof t - 1;
    while (p < e && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
                     *p == 'e' || *p == 'E'))
        p++;
    if ((size_t)(e - p) < sizeof k - 1 || memcmp(p, k, sizeof k - 1) != 0)
        return -1;
    p += sizeof k - 1;
    for (q = p; q < e && ((*q >= 'a' && *q <= 'z') || *q == '_'); q++)
        ;
    if (q == e || *q != '"')
        return -1;
    *kind = journal_kind(p, (size_t)(q - p));
    return 0;
}

/* A line at p (in buf, read from j->offset) that is not a whole record. */
static void journal_torn(im_journal *j, const char *buf, const char *p) {
    im_warn("journal %s: skipped an unreadable line at byte %lld (a torn record)", j->path,
            (long long)(j->offset + (p - buf)));
    j->st.torn_lines++;
}

/* Reads fd from j->offset up to size and applies every complete line.
 * A line that does not parse is skipped with a warning. A tail without a
 * newline is left unread; at start-up (startup set) it is reported as a
 * torn last line. Returns 0 or -1 with errno set. */
static int journal_consume(im_journal *j, int fd, off_t size, int startup) {
    size_t len;
    char *buf, *p, *end;
    enum jkind kind;
    if (size <= j->offset)
        return 0;
    len = (size_t)(size - j->offset);
    buf = malloc(len + 1);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(fd, buf + got, len - got, j->offset + (off_t)got);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n == 0 ? EIO : errno;
            free(buf);
            errno = e;
            return -1;
        }
        got += (size_t)n;
    }
    buf[len] = '\0';
    p = buf;
    end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        cJSON *rec;
        if (nl == NULL) {
            if (startup) {
                im_warn("journal %s: the last line is torn (%zu bytes without a newline, "
                        "probably a crash mid-write); it is skipped and kept as it is",
                        j->path, (size_t)(end - p));
                j->st.torn_lines++;
            }
            break;
        }
        *nl = '\0';
        /* Most records change nothing kept here (previews, fills, start-ups):
         * such a one is only checked to be whole JSON, which costs a
         * fraction of a parse, so that a torn one is reported as before. */
        if (journal_line_kind(p, (size_t)(nl - p), &kind) == 0 && !journal_applies(j, kind)) {
            if (im_text_json_len(p, (size_t)(nl - p)) == 0)
                journal_torn(j, buf, p);
            p = nl + 1;
            continue;
        }
        rec = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (rec == NULL || !cJSON_IsObject(rec)) {
            if (nl > p)
                journal_torn(j, buf, p);
        } else {
            journal_apply(j, rec);
        }
        cJSON_Delete(rec);
        p = nl + 1;
    }
    j->offset += (off_t)(p - buf);
    free(buf);
    return 0;
}

/* Opens path (read-only) under a shared lock and reads what is new.
 * A missing file is empty. Returns 0 or -1 with errno set. */
static int journal_read_file(im_journal *j, int startup) {
    struct stat st;
    int fd, rc = 0;
    fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT ? 0 : -1;
    while (flock(fd, LOCK_SH) == -1) {
        if (errno != EINTR) {
            rc = -1;
            goto out;
        }
    }
    if (fstat(fd, &st) == -1) {
        rc = -1;
        goto out;
    }
    if (st.st_size < j->offset) {
        im_warn("journal %s shrank (from %lld to %lld bytes); counters keep what was read",
                j->path, (long long)j->offset, (long long)st.st_size);
        j->offset = st.st_size;
    }
    rc = journal_consume(j, fd, st.st_size, startup);
out:
    if (rc == -1) {
        int e = errno;
        close(fd);
        errno = e;
    } else {
        close(fd);
    }
    return rc;
}

/* The newest journal file dated day or earlier, into name; 0 when found. */
static int journal_latest(const char *dir, const char *day, char *name, size_t namelen) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[JOURNAL_NAME_LEN + 1] = "";
    char limit[64];
    if (d == NULL)
        return -1;
    snprintf(limit, sizeof limit, JOURNAL_PREFIX "%s" JOURNAL_SUFFIX, day);
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != JOURNAL_NAME_LEN ||
            strncmp(e->d_name, JOURNAL_PREFIX, strlen(JOURNAL_PREFIX)) != 0 ||
            strcmp(e->d_name + JOURNAL_NAME_LEN - strlen(JOURNAL_SUFFIX), JOURNAL_SUFFIX) != 0)
            continue;
        if (strcmp(e->d_name, limit) <= 0 && strcmp(e->d_name, best) > 0)
            memcpy(best, e->d_name, JOURNAL_NAME_LEN + 1);   /* length checked above */
    }
    closedir(d);
    if (best[0] == '\0')
        return -1;
    snprintf(name, namelen, "%s", best);
    return 0;
}

int im_journal_open(const char *dir, double now, im_journal **out, char *err, size_t errlen) {
    im_journal *j;
    char day[16], name[JOURNAL_NAME_LEN + 1];
    if (dir == NULL || dir[0] == '\0' || out == NULL) {
        snprintf(err, errlen, "no state directory: set IBKR_STATE_DIR");
        return IM_EINVAL;
    }
    if (im_clock_ny_date(now, day, sizeof day) != 0) {
        snprintf(err, errlen, "cannot tell the New York trading day");
        return IM_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to start");
        return IM_EIO;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return IM_ENOMEM;
    }
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    journal_set_day(j, day);
    *out = j;
    if (im_fs_mkdirs(dir) == -1) {
        journal_fail(j, "the journal's state directory %s cannot be created or used: %s", dir,
                     strerror(errno));
        snprintf(err, errlen, "%s", j->err);
        return IM_EIO;
    }
    if (journal_latest(dir, day, name, sizeof name) == 0 &&
        strcmp(name + strlen(JOURNAL_PREFIX), day) < 0) {
        /* Today has no file yet: only the kill switch carries over. */
        char today[sizeof j->path];
        snprintf(today, sizeof today, "%s", j->path);
        snprintf(j->path, sizeof j->path, "%s/%s", dir, name);
        j->halt_only = 1;
        if (journal_read_file(j, 1) == -1) {
            journal_fail(j, "the journal %s cannot be read: %s", j->path, strerror(errno));
            snprintf(err, errlen, "%s", j->err);
            return IM_EIO;
        }
        j->halt_only = 0;
        j->st.halt_carried = j->st.halted;
        snprintf(j->path, sizeof j->path, "%s", today);
        j->offset = 0;
    }
    if (journal_read_file(j, 1) == -1) {
        journal_fail(j, "the journal %s cannot be read: %s", j->path, strerror(errno));
        snprintf(err, errlen, "%s", j->err);
        return IM_EIO;
    }
    return 0;
}

/* fsync of the file an append left unsynced: any fd on the file will do,
 * and the exclusive lock is not needed (fsync only flushes). */
static int journal_sync_path(im_journal *j) {
    int fd, rc = 0;
    if (j->unsynced[0] == '\0')
        return 0;
    fd = open(j->unsynced, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd == -1 || fsync(fd) == -1) {
        journal_fail(j, "the journal %s cannot be written: %s", j->unsynced, strerror(errno));
        rc = IM_EIO;
    }
    if (fd != -1)
        close(fd);
    j->unsynced[0] = '\0';
    return rc;
}

void im_journal_defer_sync(im_journal *j, int on) {
    if (j != NULL)
        j->defer_sync = on != 0;
}

int im_journal_sync(im_journal *j) {
    if (j == NULL)
        return 0;
    j->defer_sync = 0;
    return journal_sync_path(j);
}

void im_journal_free(im_journal *j) {
    if (j == NULL)
        return;
    im_journal_sync(j);
    free(j->tokens);
    free(j->sent);
    free(j->unacked);
    free(j);
}

/* Moves to the file of the trading day at now, when it changed. The kill
 * switch carries over; the counters start again. */
static void journal_roll(im_journal *j, double now) {
    char day[16];
    if (im_clock_ny_date(now, day, sizeof day) != 0 || strcmp(day, j->st.day) == 0)
        return;
    journal_set_day(j, day);
}

int im_journal_refresh(im_journal *j, double now) {
    journal_roll(j, now);
    if (journal_read_file(j, 0) == -1) {
        journal_fail(j, "the journal %s cannot be read: %s", j->path, strerror(errno));
        return IM_EIO;
    }
    return 0;
}

int im_journal_append(im_journal *j, double now, const char *kind, cJSON *fields) {
    return im_journal_append_guarded(j, now, kind, fields, NULL, NULL);
}

int im_journal_append_guarded(im_journal *j, double now, const char *kind, cJSON *fields,
                              im_journal_guard guard, void *ud) {
    cJSON *rec = cJSON_CreateObject();
    char when[32], *line = NULL, *text = NULL;
    struct stat st;
    size_t len;
    int fd = -1, torn, rc = IM_EIO;

    if (rec == NULL) {
        cJSON_Delete(fields);
        journal_fail(j, "the journal %s cannot be written: out of memory", j->path);
        return IM_ENOMEM;
    }
    im_clock_format_utc(now, when, sizeof when);
    cJSON_AddStringToObject(rec, "time", when);
    cJSON_AddNumberToObject(rec, "t", now);
    cJSON_AddStringToObject(rec, "kind", kind);
    cJSON_AddNumberToObject(rec, "pid", (double)getpid());
    while (fields != NULL && fields->child != NULL) {
        cJSON *item = cJSON_DetachItemViaPointer(fields, fields->child);
        /* cJSON copies the key before it frees the item's own. */
        cJSON_AddItemToObject(rec, item->string, item);
    }
    cJSON_Delete(fields);
    {
        /* jsonw.h: every number reads back exactly (cJSON's own printer
         * rounds some to 15 digits), so a rebuilt day sums to the same. */
        im_jw w;
        im_jw_init(&w);
        im_jw_cjson(&w, rec);
        text = im_jw_take(&w, NULL);
    }
    if (text == NULL) {
        cJSON_Delete(rec);
        journal_fail(j, "the journal %s cannot be written: out of memory", j->path);
        return IM_ENOMEM;
    }

    journal_roll(j, now);
    fd = open(j->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1 && errno == ENOENT) {
        /* The state directory went away: made again, then retried (not
         * before every append: two failing mkdir calls per record). */
        if (im_fs_mkdirs(j->dir) == -1) {
            journal_fail(j, "the journal's state directory %s cannot be used: %s", j->dir,
                         strerror(errno));
            goto out;
        }
        fd = open(j->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd == -1) {
        journal_fail(j, "the journal %s cannot be opened for writing: %s", j->path,
                     strerror(errno));
        goto out;
    }
    while (flock(fd, LOCK_EX) == -1) {
        if (errno != EINTR) {
            journal_fail(j, "the journal %s cannot be locked: %s", j->path, strerror(errno));
            goto out;
        }
    }
    if (fstat(fd, &st) == -1) {
        journal_fail(j, "the journal %s cannot be read: %s", j->path, strerror(errno));
        goto out;
    }
    if (st.st_size < j->offset)
        j->offset = st.st_size;
    if (journal_consume(j, fd, st.st_size, 0) == -1) {
        journal_fail(j, "the journal %s cannot be read: %s", j->path, strerror(errno));
        goto out;
    }
    if (guard != NULL && guard(ud, &j->st) != 0) {
        rc = IM_ERISK;
        goto out;
    }
    /* Whatever is left unread is a torn line: start on a fresh line and
     * leave it behind (it was reported when it was first seen). */
    torn = j->offset < st.st_size;
    len = strlen(text);
    line = malloc(len + 3);
    if (line == NULL) {
        journal_fail(j, "the journal %s cannot be written: out of memory", j->path);
        rc = IM_ENOMEM;
        goto out;
    }
    snprintf(line, len + 3, "%s%s\n", torn ? "\n" : "", text);
    len = strlen(line);
    if (im_fs_write_all(fd, line, len) == -1 || (!j->defer_sync && fsync(fd) == -1)) {
        journal_fail(j, "the journal %s cannot be written: %s", j->path, strerror(errno));
        goto out;
    }
    if (j->defer_sync)
        snprintf(j->unsynced, sizeof j->unsynced, "%s", j->path);
    else if (strcmp(j->unsynced, j->path) == 0)
        j->unsynced[0] = '\0';   /* this fsync covered the earlier lines */
    j->offset = st.st_size + (off_t)len;
    journal_apply(j, rec);
    j->failed = 0;
    j->err[0] = '\0';
    rc = 0;
out:
    if (fd != -1)
        close(fd);   /* drops the lock */
    free(line);
    free(text);
    cJSON_Delete(rec);
    return rc;
}

const im_journal_state *im_journal_state_get(const im_journal *j) { return &j->st; }
const char *im_journal_error(const im_journal *j) { return j->failed ? j->err : NULL; }
const char *im_journal_dir(const im_journal *j) { return j->dir; }
const char *im_journal_path(const im_journal *j) { return j->path; }

int im_journal_tail(const im_journal *j, const char *day, size_t max_records, size_t max_bytes,
                    cJSON **out) {
    char path[sizeof j->path];
    int fd;
    struct stat st;
    off_t from;
    char *buf, *p, *end;
    ssize_t got;
    size_t n = 0, skip;
    cJSON *arr;

    *out = NULL;
    if (j == NULL || max_bytes == 0)
        return IM_EINVAL;
    if (day == NULL) {
        snprintf(path, sizeof path, "%s", j->path);
    } else {
        /* Only a well-formed date names a file: no path can be smuggled in. */
        int y, m, d, used = 0;
        if (strlen(day) != 10 || sscanf(day, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 ||
            used != 10 ||
            m < 1 || m > 12 || d < 1 || d > 31)
            return IM_EINVAL;
        snprintf(path, sizeof path, "%s/" JOURNAL_PREFIX "%.10s" JOURNAL_SUFFIX, j->dir, day);
    }
    arr = cJSON_CreateArray();
    if (arr == NULL)
        return IM_ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* No record yet today: an empty journal, not an error. */
        *out = arr;
        return errno == ENOENT ? 0 : IM_EIO;
    }
    if (fstat(fd, &st) != 0 || (buf = malloc(max_bytes + 1)) == NULL) {
        close(fd);
        cJSON_Delete(arr);
        return IM_EIO;
    }
    /* Only the end of the file is read: bounded memory on a busy day. */
    from = st.st_size > (off_t)max_bytes ? st.st_size - (off_t)max_bytes : 0;
    got = pread(fd, buf, max_bytes, from);
    close(fd);
    if (got < 0) {
        free(buf);
        cJSON_Delete(arr);
        return IM_EIO;
    }
    buf[got] = '\0';
    p = buf;
    end = buf + got;
    if (from > 0) {
        /* The first line was cut by the window: skip it. */
        char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    /* Count the whole lines, then keep the last max_records of them. */
    for (char *q = p; q < end; q++)
        n += *q == '\n';
    skip = n > max_records ? n - max_records : 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        cJSON *rec;
        if (nl == NULL)
            break; /* a torn last line: not a record */
        if (skip > 0) {
            skip--;
        } else if ((rec = cJSON_ParseWithLength(p, (size_t)(nl - p))) != NULL) {
            cJSON_AddItemToArray(arr, rec);
        }
        p = nl + 1;
    }
    free(buf);
    *out = arr;
    return 0;
}

int im_journal_token_used(const im_journal *j, const char *token_hash_hex) {
    for (size_t i = 0; i < j->ntokens; i++)
        if (strcmp(j->tokens[i], token_hash_hex) == 0)
            return 1;
    return 0;
}

int im_journal_kill_file(const im_journal *j, char *path, size_t pathlen) {
    char p[1100];
    snprintf(p, sizeof p, "%s/KILL", j->dir);
    if (path != NULL)
        snprintf(path, pathlen, "%s", p);
    return access(p, F_OK) == 0;
}

/* ---- `ibkr-mcp resume` ---- */

static const char *resume_getenv(const char *name) { return getenv(name); }

int im_journal_resume_cmd(int argc, char **argv) {
    const char *reason = "resumed by the operator (ibkr-mcp resume)";
    char err[1400], kill[1100];
    im_config cfg;
    im_journal *j = NULL;
    cJSON *f;
    double now;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (strncmp(argv[i], "--reason=", 9) == 0) {
            reason = argv[i] + 9;
        } else {
            fprintf(stderr, "usage: ibkr-mcp resume [--reason R]\n");
            return 2;
        }
    }
    im_config_defaults(&cfg);
    if (im_config_load(&cfg, resume_getenv, err, sizeof err) != 0) {
        fprintf(stderr, "ibkr-mcp resume: %s\n", err);
        return 2;
    }
    if (cfg.state_dir[0] == '\0') {
        fprintf(stderr, "ibkr-mcp resume: no state directory; set IBKR_STATE_DIR\n");
        return 2;
    }
    /* The trading day the next server start will see: the simulator's
     * clock starts at IBKR_SIM_START. */
    now = strcmp(cfg.backend, "sim") == 0 ? cfg.sim_start : (double)time(NULL);
    rc = im_journal_open(cfg.state_dir, now, &j, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ibkr-mcp resume: %s\n", err);
        im_journal_free(j);
        return 1;
    }
    if (!im_journal_state_get(j)->halted)
        fprintf(stderr, "ibkr-mcp resume: trading was not halted in %s; recording the resume "
                        "anyway\n", cfg.state_dir);
    f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "reason", reason);
    cJSON_AddStringToObject(f, "by", "ibkr-mcp resume");
    rc = im_journal_append(j, now, "resume", f);
    if (rc != 0) {
        fprintf(stderr, "ibkr-mcp resume: %s\n", im_journal_error(j));
        im_journal_free(j);
        return 1;
    }
    fprintf(stderr, "ibkr-mcp resume: recorded in %s; the next server start is not halted "
                    "(a running server reads it only when it starts again)\n",
            im_journal_path(j));
    if (im_journal_kill_file(j, kill, sizeof kill)) {
        fprintf(stderr, "ibkr-mcp resume: %s still exists and halts every placement; remove it "
                        "by hand\n", kill);
        im_journal_free(j);
        return 1;
    }
    im_journal_free(j);
    return 0;
}
