/* journal.h: the durable journal. One append-only JSON-lines file per New
 * York trading day, `journal-YYYY-MM-DD.jsonl`, in the state directory
 * (created 0700; files 0600). Every record is one line written under an
 * exclusive flock(2) and fsync'd before the call returns, so the session
 * can acknowledge an event only after it is on disk. Records carry the
 * time, a kind, the process id and the fields of the event; never a
 * confirmation token, only its BLAKE2b-256 hash.
 *
 * The journal is also the memory that outlives the process: opening it
 * reads today's file and rebuilds today's order count and notional, the
 * kill switch (the last halt or resume record wins, carried over from the
 * latest earlier day when today has no file yet) and the consumed token
 * hashes. Before each decision the session calls im_journal_refresh(),
 * which reads only the bytes appended since the last read, so two servers
 * on one state directory see each other's orders. A torn last line (a
 * crash mid-write) is skipped with a warning and never rewritten; the next
 * append starts on a fresh line.
 *
 * Uses cJSON, libsodium, broker.h (order types) and clock.h (the trading
 * day). Knows nothing of the session. */
#ifndef IM_JOURNAL_H
#define IM_JOURNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "broker.h"

#define IM_JOURNAL_HASH_HEX 65   /* 64 hex digits + NUL */

typedef struct im_journal im_journal;

/* What the journal says about the current trading day. */
typedef struct im_journal_state {
    char day[16];            /* "YYYY-MM-DD", New York */
    int orders;              /* order_sent records today (every process) */
    double notional;         /* their notional */
    int halted;              /* the last halt/resume record was a halt */
    char halt_reason[2048];   /* a whole 500-character reason, UTF-8 */
    unsigned long halts;     /* halt records seen so far (a generation) */
    int halt_carried;        /* halted came from an earlier day's file */
    int torn_lines;          /* unparseable lines skipped */
    int consecutive_rejects; /* placements rejected in a row (the breaker's count) */
} im_journal_state;

/* Opens the journal in dir at time now (epoch seconds): creates dir (0700)
 * when missing and reads the latest journal file dated today or earlier.
 * Returns 0 with *out set; or a negative code with a sentence in err and,
 * unless the code is IM_ENOMEM or IM_EINVAL, *out still set to a journal
 * that is broken (im_journal_error says why; every append retries and
 * fails until the directory is usable again): the caller halts trading.
 * Free with im_journal_free. */
int im_journal_open(const char *dir, double now, im_journal **out, char *err, size_t errlen);
void im_journal_free(im_journal *j);

/* Appends one record of the given kind at time now, after catching up on
 * what other processes appended. Takes ownership of fields (an object, or
 * NULL for none); its members follow "time", "t", "kind" and "pid". Returns
 * 0 once the line is fsync'd, or a negative code (the sentence is then in
 * im_journal_error). */
int im_journal_append(im_journal *j, double now, const char *kind, cJSON *fields);
/* A last check under the lock, after catching up on other processes and
 * before writing: returns 0 to write, anything else to refuse. */
typedef int (*im_journal_guard)(void *ud, const im_journal_state *st);
/* im_journal_append with a guard (may be NULL). When the guard refuses,
 * nothing is written, fields is freed and IM_ERISK is returned; that is
 * not a journal failure. This is how two servers on one state directory
 * cannot both take the last order of a daily cap. */
int im_journal_append_guarded(im_journal *j, double now, const char *kind, cJSON *fields,
                              im_journal_guard guard, void *ud);
/* Start-up: with on set, appends write their line but skip the fsync, which
 * im_journal_sync (or the next append's own fsync, or im_journal_free)
 * does later. For the records written while the server starts, so that
 * the client's initialize is not kept waiting for the disk; a write error
 * still shows at once, an fsync error at im_journal_sync. */
void im_journal_defer_sync(im_journal *j, int on);
/* Stops deferring and fsyncs what was written without it. Returns 0 or a
 * negative code (the journal has then failed: see im_journal_error). */
int im_journal_sync(im_journal *j);
/* Reads what was appended since the last read (by any process), rolling
 * over to a new file when the trading day at now has changed. Returns 0 or
 * a negative code (see im_journal_error). */
int im_journal_refresh(im_journal *j, double now);
/* One order_sent record: when, and what. */
typedef struct im_journal_sent {
    double t;
    im_order order;
} im_journal_sent;

/* Today's order_sent records from every process, in file order (the rate
 * windows and the duplicate check count them). Valid until the next call
 * that reads or appends; *n gets the count. */
const im_journal_sent *im_journal_sent_list(const im_journal *j, size_t *n);
/* orderRefs of today's order_sent records that have no order_ack or
 * place_error yet: orders in flight, or lost in a crash between sending
 * and the broker's answer. Valid until the next read or append. */
const char (*im_journal_unacked(const im_journal *j, size_t *n))[IM_ORDER_REF_MAX];
/* The counters and the kill switch as the journal has them. */
const im_journal_state *im_journal_state_get(const im_journal *j);
/* The last failure as a sentence naming the file, or NULL after success. */
const char *im_journal_error(const im_journal *j);
/* The state directory and the current day's file. */
const char *im_journal_dir(const im_journal *j);
const char *im_journal_path(const im_journal *j);
/* The last max_records whole records of the file of day ("YYYY-MM-DD";
 * NULL = today's), read from at most its last max_bytes, oldest first, as
 * a new cJSON array in *out (the caller deletes it). A torn or unparseable
 * line is skipped; no file for that day is an empty array. Returns 0,
 * IM_EINVAL (a malformed day), IM_EIO or IM_ENOMEM. */
int im_journal_tail(const im_journal *j, const char *day, size_t max_records, size_t max_bytes,
                    cJSON **out);
/* 1 when token_hash_hex (from im_journal_token_hash) was redeemed today. */
int im_journal_token_used(const im_journal *j, const char *token_hash_hex);
/* 1 when the file KILL exists in the state directory; its path goes to
 * path (may be NULL). */
int im_journal_kill_file(const im_journal *j, char *path, size_t pathlen);

/* BLAKE2b-256 of a token, as 64 hex digits, into out. */
void im_journal_token_hash(const char *token, char out[IM_JOURNAL_HASH_HEX]);

/* `ibkr-mcp resume [--reason R]`: the operator releases the kill switch by
 * appending a resume record to today's journal in IBKR_STATE_DIR, so the
 * next server start is not halted (a running server reads resume records
 * only at start-up; its REPL is the live path). A KILL file is left alone:
 * it must be removed by hand. argv holds the arguments after "resume".
 * Returns the exit code: 0 resumed, 1 a KILL file still halts trading or
 * the journal could not be written, 2 bad usage or configuration. */
int im_journal_resume_cmd(int argc, char **argv);

#endif
