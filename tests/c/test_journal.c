/* test_journal.c: the durable journal (journal.c) alone and under a real
 * app (app.c: simulator, session, tools): records on disk before the
 * answer, no token in the file, a torn last line, restart safety for the
 * daily count, the kill switch and tokens, the KILL file, `ibkr-mcp
 * resume`, a journal that cannot be written, and two apps on one state
 * directory. Each test uses its own temporary state directory. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "app.h"
#include "common.h"
#include "error.h"
#include "journal.h"
#include "session.h"
#include "test.h"

#define T0 IM_CLOCK_DEFAULT_SIM_START

/* ---- fixture ------------------------------------------------------------ */

static char g_dir[96];
static char g_policy_dir[64];
static const char *g_max_daily = "50";
static const char *g_cancel_on_exit = "false";
static const char *g_per_min = "30";

static const char *fx_getenv(const char *name) {
    if (strcmp(name, "IBKR_STATE_DIR") == 0)
        return g_dir;
    if (strcmp(name, "IBKR_POLICY_DIR") == 0)
        return g_policy_dir;   /* empty: the built-in checks only */
    if (strcmp(name, "IBKR_TRADING_ENABLED") == 0)
        return "true";
    if (strcmp(name, "IBKR_MAX_DAILY_ORDERS") == 0)
        return g_max_daily;
    if (strcmp(name, "IBKR_MAX_ORDERS_PER_MIN") == 0)
        return g_per_min;
    if (strcmp(name, "IBKR_CANCEL_ON_EXIT") == 0)
        return g_cancel_on_exit;
    if (strcmp(name, "IBKR_LOG_LEVEL") == 0)
        return "off";
    return NULL;
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (d == NULL) {
        unlink(dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void fx_setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/im-test-journal-XXXXXX");
    ASSERT(mkdtemp(g_dir) != NULL);
    snprintf(g_policy_dir, sizeof g_policy_dir, "/tmp/im-test-policies-XXXXXX");
    ASSERT(mkdtemp(g_policy_dir) != NULL);
    g_max_daily = "50";
    g_cancel_on_exit = "false";
    g_per_min = "30";
}

static void fx_teardown(void) {
    rm_tree(g_dir);
    rmdir(g_policy_dir);
}

static void today_path(char *out, size_t len) {
    char day[16];
    ASSERT_EQ(im_clock_ny_date(T0, day, sizeof day), 0);
    snprintf(out, len, "%s/journal-%s.jsonl", g_dir, day);
}

/* Returns heap memory with the whole file (free with free()), or NULL. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd != -1);
    ASSERT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
}

static uv_loop_t g_loop;

static void app_start(im_app *a) {
    char err[512];
    int rc = im_app_init(a, &g_loop, fx_getenv, 1, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "app: %s\n", err);
    ASSERT_EQ(rc, 0);
}

static void app_stop(im_app *a) {
    im_app_close(a);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

typedef struct waiter {
    int done;
    int status;
    im_preview p;
    im_place_result r;
    char *journal_at_answer;   /* the journal as it was when the answer came */
} waiter;

static void run_until(const int *done) {
    for (int i = 0; !*done && i < 1000000; i++)
        uv_run(&g_loop, UV_RUN_ONCE);
    ASSERT(*done);
}

static void preview_cb(void *ud, int status, const char *msg, const im_preview *p) {
    waiter *w = ud;
    (void)msg;
    w->status = status;
    if (p != NULL)
        w->p = *p;
    w->done = 1;
}

static void place_cb(void *ud, const im_place_result *r) {
    waiter *w = ud;
    char path[256];
    w->r = *r;
    today_path(path, sizeof path);
    free(w->journal_at_answer);
    w->journal_at_answer = slurp(path);
    w->done = 1;
}

static im_order buy(double qty) {
    im_order o;
    memset(&o, 0, sizeof o);
    snprintf(o.symbol, sizeof o.symbol, "NVDA");
    o.side = IM_SIDE_BUY;
    o.quantity = qty;
    o.type = IM_OT_MKT;
    o.tif = IM_TIF_DAY;
    return o;
}

static void do_preview(im_app *a, double qty, waiter *w) {
    im_order o = buy(qty);
    memset(w, 0, sizeof *w);
    ASSERT_EQ(im_session_preview(a->session, &o, preview_cb, w), 0);
    run_until(&w->done);
    ASSERT_EQ(w->status, 0);
}

/* The caller frees w->journal_at_answer. */
static void do_place(im_app *a, const char *token, waiter *w) {
    memset(w, 0, sizeof *w);
    ASSERT_EQ(im_session_place(a->session, token, place_cb, w), 0);
    run_until(&w->done);
}

static int has_code(const im_risk_result *r, const char *code) {
    for (size_t i = 0; i < r->nreasons; i++)
        if (strcmp(r->reasons[i].code, code) == 0)
            return 1;
    return 0;
}

/* Previews and places one order; returns its place status. */
static int trade(im_app *a, double qty) {
    waiter w;
    int status;
    do_preview(a, qty, &w);
    if (!w.p.risk.approved)
        return IM_ERISK;
    {
        char token[IM_TOKEN_LEN + 1];
        memcpy(token, w.p.token, sizeof token);
        do_place(a, token, &w);
    }
    status = w.r.status;
    free(w.journal_at_answer);
    return status;
}

/* ---- the journal alone -------------------------------------------------- */

TEST(journal_creates_private_dir_and_file) {
    char sub[128], path[256], err[512];
    im_journal *j = NULL;
    struct stat st;
    fx_setup();
    snprintf(sub, sizeof sub, "%s/state", g_dir);
    ASSERT_EQ(im_journal_open(sub, T0, &j, err, sizeof err), 0);
    ASSERT_EQ(stat(sub, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    ASSERT_EQ(im_journal_append(j, T0, "startup", NULL), 0);
    snprintf(path, sizeof path, "%s", im_journal_path(j));
    ASSERT_CONTAINS(path, "/journal-2025-06-10.jsonl");
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    /* Removed under a running server: the next record makes the directory
     * again (private) and lands in a fresh file. */
    rm_tree(sub);
    ASSERT(stat(sub, &st) != 0);
    ASSERT_EQ(im_journal_append(j, T0 + 1, "preview", NULL), 0);
    ASSERT_EQ(stat(sub, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT(im_journal_error(j) == NULL);
    im_journal_free(j);
    unlink(path);
    rmdir(sub);
    fx_teardown();
}

/* Numbers are written so that they read back exactly, not cut to 15
 * digits (a rebuilt day's notional must sum to what the running server had). */
TEST(journal_numbers_read_back_exactly) {
    char err[512], *text;
    im_journal *j = NULL;
    cJSON *f, *rec;
    double v = 0.1 + 0.2;
    fx_setup();
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "notional", v);
    cJSON_AddNumberToObject(f, "price", 167.97);
    ASSERT_EQ(im_journal_append(j, T0, "preview", f), 0);
    text = slurp(im_journal_path(j));
    ASSERT(text != NULL);
    ASSERT_CONTAINS(text, "\"notional\":0.30000000000000004");
    ASSERT_CONTAINS(text, "\"price\":167.97");
    rec = cJSON_Parse(strchr(text, '{'));
    ASSERT(rec != NULL);
    ASSERT(cJSON_GetObjectItemCaseSensitive(rec, "notional")->valuedouble == v);
    cJSON_Delete(rec);
    free(text);
    im_journal_free(j);
    fx_teardown();
}

TEST(journal_torn_last_line_skipped_and_next_record_on_its_own_line) {
    char path[256], err[512], *text;
    im_journal *j = NULL;
    cJSON *f;
    fx_setup();
    today_path(path, sizeof path);
    write_file(path, "{\"kind\":\"order_sent\",\"notional\":100}\n"
                     "{\"kind\":\"order_sent\",\"notio");
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    ASSERT_EQ(im_journal_state_get(j)->orders, 1);
    ASSERT_EQ(im_journal_state_get(j)->torn_lines, 1);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "notional", 50);
    ASSERT_EQ(im_journal_append(j, T0, "order_sent", f), 0);
    ASSERT_EQ(im_journal_state_get(j)->orders, 2);
    ASSERT_NEAR(im_journal_state_get(j)->notional, 150, 1e-9);
    im_journal_free(j);

    /* The torn bytes are kept as they were; the new record is a line. */
    text = slurp(path);
    ASSERT(text != NULL);
    ASSERT_CONTAINS(text, "\"notio\n{\"time\":");
    ASSERT_EQ(text[strlen(text) - 1], '\n');
    free(text);

    /* And a restart reads the same: 2 orders, the torn line skipped. */
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    ASSERT_EQ(im_journal_state_get(j)->orders, 2);
    ASSERT_EQ(im_journal_state_get(j)->torn_lines, 1);
    im_journal_free(j);
    fx_teardown();
}

TEST(journal_two_writers_see_each_other) {
    char err[512];
    im_journal *a = NULL, *b = NULL;
    cJSON *f;
    fx_setup();
    ASSERT_EQ(im_journal_open(g_dir, T0, &a, err, sizeof err), 0);
    ASSERT_EQ(im_journal_open(g_dir, T0, &b, err, sizeof err), 0);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "notional", 10);
    ASSERT_EQ(im_journal_append(a, T0, "order_sent", f), 0);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "notional", 20);
    ASSERT_EQ(im_journal_append(b, T0, "order_sent", f), 0);   /* catches up first */
    ASSERT_EQ(im_journal_state_get(b)->orders, 2);
    ASSERT_EQ(im_journal_state_get(a)->orders, 1);
    ASSERT_EQ(im_journal_refresh(a, T0), 0);                  /* reads only b's line */
    ASSERT_EQ(im_journal_state_get(a)->orders, 2);
    ASSERT_NEAR(im_journal_state_get(a)->notional, 30, 1e-9);
    ASSERT_EQ(im_journal_refresh(a, T0), 0);
    ASSERT_EQ(im_journal_state_get(a)->orders, 2);
    im_journal_free(a);
    im_journal_free(b);
    fx_teardown();
}

TEST(journal_new_day_counts_from_zero_but_keeps_the_halt) {
    char err[512];
    im_journal *j = NULL;
    cJSON *f;
    fx_setup();
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "notional", 10);
    ASSERT_EQ(im_journal_append(j, T0, "order_sent", f), 0);
    f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "reason", "stop");
    ASSERT_EQ(im_journal_append(j, T0, "halt", f), 0);
    im_journal_free(j);
    ASSERT_EQ(im_journal_open(g_dir, T0 + 86400, &j, err, sizeof err), 0);
    ASSERT_EQ(im_journal_state_get(j)->orders, 0);
    ASSERT_EQ(im_journal_state_get(j)->halted, 1);
    ASSERT_EQ(im_journal_state_get(j)->halt_carried, 1);
    ASSERT_STR_EQ(im_journal_state_get(j)->halt_reason, "stop");
    im_journal_free(j);
    fx_teardown();
}

/* ---- under a real app ------------------------------------------------- */

TEST(journal_written_before_the_answer_and_never_holds_the_token) {
    im_app a;
    waiter w;
    char token[IM_TOKEN_LEN + 1], hash[IM_JOURNAL_HASH_HEX], path[256], *text;
    fx_setup();
    uv_loop_init(&g_loop);
    app_start(&a);
    do_preview(&a, 10, &w);
    ASSERT(w.p.risk.approved);
    memcpy(token, w.p.token, sizeof token);
    ASSERT_EQ(strlen(token), IM_TOKEN_LEN);
    do_place(&a, token, &w);
    ASSERT_EQ(w.r.status, 0);
    /* What the file held when the place result was delivered. */
    ASSERT(w.journal_at_answer != NULL);
    ASSERT_CONTAINS(w.journal_at_answer, "\"kind\":\"startup\"");
    ASSERT_CONTAINS(w.journal_at_answer, "\"kind\":\"preview\"");
    ASSERT_CONTAINS(w.journal_at_answer, "\"kind\":\"redeem\"");
    ASSERT_CONTAINS(w.journal_at_answer, "\"kind\":\"order_sent\"");
    ASSERT_CONTAINS(w.journal_at_answer, "\"kind\":\"order_ack\"");
    ASSERT_CONTAINS(w.journal_at_answer, w.r.order.order.order_ref);
    ASSERT_CONTAINS(w.journal_at_answer, w.r.order.order_id);
    ASSERT_CONTAINS(w.journal_at_answer, "\"policies_hash\":");
    /* Every decision names the (empty) set of policies that ran. */
    ASSERT_CONTAINS(w.journal_at_answer, "\"policies\":[]");
    free(w.journal_at_answer);
    app_stop(&a);
    uv_loop_close(&g_loop);

    today_path(path, sizeof path);
    text = slurp(path);
    ASSERT(text != NULL);
    ASSERT(strstr(text, token) == NULL);
    im_journal_token_hash(token, hash);
    ASSERT_EQ(count_of(text, hash), 3);   /* preview, redeem, order_sent */
    ASSERT_CONTAINS(text, "\"kind\":\"exit\"");
    free(text);
    fx_teardown();
}

TEST(journal_restart_keeps_the_daily_count) {
    im_app a;
    waiter w;
    fx_setup();
    g_max_daily = "1";
    uv_loop_init(&g_loop);
    app_start(&a);
    ASSERT_EQ(trade(&a, 10), 0);
    ASSERT_EQ(im_session_orders_today(a.session), 1);
    app_stop(&a);

    app_start(&a);
    ASSERT_EQ(im_session_orders_today(a.session), 1);
    do_preview(&a, 10, &w);
    ASSERT(!w.p.risk.approved);
    ASSERT(has_code(&w.p.risk, "RISK_DAILY_ORDER_LIMIT"));
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

TEST(journal_token_from_before_a_restart_is_refused) {
    im_app a;
    waiter w;
    char token[IM_TOKEN_LEN + 1];
    fx_setup();
    uv_loop_init(&g_loop);
    app_start(&a);
    do_preview(&a, 10, &w);
    memcpy(token, w.p.token, sizeof token);
    do_place(&a, token, &w);
    ASSERT_EQ(w.r.status, 0);
    free(w.journal_at_answer);
    app_stop(&a);

    app_start(&a);
    do_place(&a, token, &w);
    ASSERT_EQ(w.r.status, IM_ETOKEN_UNKNOWN);
    free(w.journal_at_answer);
    ASSERT_EQ(im_session_orders_today(a.session), 1);
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

TEST(journal_halt_persists_and_resume_cmd_clears_it) {
    im_app a;
    waiter w;
    const char *why = NULL;
    char *argv[] = {"--reason", "checked by the operator"};
    fx_setup();
    uv_loop_init(&g_loop);
    app_start(&a);
    im_session_halt(a.session, "agent pulled the switch");
    app_stop(&a);

    app_start(&a);
    ASSERT_EQ(im_session_halted(a.session, &why), 1);
    ASSERT_STR_EQ(why, "agent pulled the switch");
    do_preview(&a, 10, &w);
    ASSERT(has_code(&w.p.risk, "RISK_HALTED"));
    app_stop(&a);

    ASSERT_EQ(setenv("IBKR_STATE_DIR", g_dir, 1), 0);
    ASSERT_EQ(im_journal_resume_cmd(2, argv), 0);
    unsetenv("IBKR_STATE_DIR");

    app_start(&a);
    ASSERT_EQ(im_session_halted(a.session, NULL), 0);
    ASSERT_EQ(trade(&a, 10), 0);
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

TEST(journal_kill_file_halts_placement) {
    im_app a;
    waiter w;
    const char *why = NULL;
    char kill[256], token[IM_TOKEN_LEN + 1];
    char *argv[] = {NULL};
    fx_setup();
    uv_loop_init(&g_loop);
    app_start(&a);
    do_preview(&a, 10, &w);
    ASSERT(w.p.risk.approved);
    memcpy(token, w.p.token, sizeof token);

    snprintf(kill, sizeof kill, "%s/KILL", g_dir);
    write_file(kill, "");
    ASSERT_EQ(im_session_halted(a.session, &why), 1);
    ASSERT_CONTAINS(why, "KILL");
    do_place(&a, token, &w);
    ASSERT_EQ(w.r.status, IM_ERISK);
    ASSERT_CONTAINS(w.r.message, "KILL");
    free(w.journal_at_answer);
    ASSERT_EQ(im_session_orders_today(a.session), 0);

    /* `resume` cannot lift a KILL file; removing it does. */
    ASSERT_EQ(setenv("IBKR_STATE_DIR", g_dir, 1), 0);
    ASSERT_EQ(im_journal_resume_cmd(0, argv), 1);
    unsetenv("IBKR_STATE_DIR");
    unlink(kill);
    ASSERT_EQ(im_session_halted(a.session, NULL), 0);
    ASSERT_EQ(trade(&a, 10), 0);
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

TEST(journal_unusable_state_dir_halts_trading) {
    im_app a;
    waiter w;
    const char *why = NULL;
    char file[160], saved[96];
    fx_setup();
    /* A regular file where the directory should be (root ignores chmod). */
    snprintf(file, sizeof file, "%s/plainfile", g_dir);
    write_file(file, "x");
    snprintf(saved, sizeof saved, "%s", g_dir);
    ASSERT(snprintf(g_dir, sizeof g_dir, "%s/plainfile", saved) < (int)sizeof g_dir);
    uv_loop_init(&g_loop);
    app_start(&a);
    ASSERT_EQ(im_session_halted(a.session, &why), 1);
    ASSERT_CONTAINS(why, "journal");
    do_preview(&a, 10, &w);
    ASSERT(!w.p.risk.approved);
    ASSERT_EQ(w.p.token[0], '\0');
    app_stop(&a);
    uv_loop_close(&g_loop);
    snprintf(g_dir, sizeof g_dir, "%s", saved);
    fx_teardown();
}

TEST(journal_write_failure_mid_run_halts_trading) {
    im_app a;
    waiter w;
    const char *why = NULL;
    char token[IM_TOKEN_LEN + 1], moved[128];
    fx_setup();
    uv_loop_init(&g_loop);
    app_start(&a);
    do_preview(&a, 10, &w);
    ASSERT(w.p.risk.approved);
    memcpy(token, w.p.token, sizeof token);
    /* The state directory goes away and a file takes its place. */
    snprintf(moved, sizeof moved, "%s.moved", g_dir);
    ASSERT_EQ(rename(g_dir, moved), 0);
    write_file(g_dir, "x");
    do_place(&a, token, &w);
    ASSERT(w.r.status != 0);
    ASSERT_CONTAINS(w.r.message, "journal");
    free(w.journal_at_answer);
    ASSERT_EQ(im_session_halted(a.session, &why), 1);
    ASSERT_CONTAINS(why, "journal");
    app_stop(&a);
    uv_loop_close(&g_loop);
    unlink(g_dir);
    ASSERT_EQ(rename(moved, g_dir), 0);
    fx_teardown();
}

TEST(journal_two_apps_on_one_state_dir_do_not_double_count) {
    im_app a, b;
    waiter w;
    fx_setup();
    g_max_daily = "3";
    uv_loop_init(&g_loop);
    app_start(&a);
    app_start(&b);
    ASSERT_EQ(trade(&a, 10), 0);
    ASSERT_EQ(trade(&b, 10), 0);
    ASSERT_EQ(trade(&a, 10), 0);
    ASSERT_EQ(im_session_orders_today(a.session), 3);
    ASSERT_EQ(im_session_orders_today(b.session), 3);
    do_preview(&b, 10, &w);
    ASSERT(has_code(&w.p.risk, "RISK_DAILY_ORDER_LIMIT"));
    /* A halt one journals reaches the other at its next decision. */
    im_session_halt(a.session, "stop both");
    do_preview(&b, 10, &w);
    ASSERT(has_code(&w.p.risk, "RISK_HALTED"));
    app_stop(&b);
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

/* Places a resting limit buy (far below the market) and returns its id. */
static void place_resting(im_app *a, char *id, size_t idlen) {
    im_order o = buy(5);
    waiter w;
    char token[IM_TOKEN_LEN + 1];
    o.type = IM_OT_LMT;
    o.limit_price = 150;
    memset(&w, 0, sizeof w);
    ASSERT_EQ(im_session_preview(a->session, &o, preview_cb, &w), 0);
    run_until(&w.done);
    ASSERT(w.p.risk.approved);
    memcpy(token, w.p.token, sizeof token);
    do_place(a, token, &w);
    ASSERT_EQ(w.r.status, 0);
    ASSERT_EQ(w.r.order.status, IM_OS_SUBMITTED);
    snprintf(id, idlen, "%s", w.r.order.order_id);
    free(w.journal_at_answer);
}

TEST(journal_exit_says_which_orders_stay_or_are_cancelled) {
    im_app a;
    char id[IM_ORDER_ID_MAX], want[128], path[256], *text, *exit_rec;
    fx_setup();
    uv_loop_init(&g_loop);
    today_path(path, sizeof path);

    app_start(&a);
    place_resting(&a, id, sizeof id);
    app_stop(&a);
    text = slurp(path);
    ASSERT(text != NULL);
    exit_rec = strstr(text, "\"kind\":\"exit\"");
    ASSERT(exit_rec != NULL);
    snprintf(want, sizeof want, "\"working_orders_left\":[{\"order_id\":\"%s\"", id);
    ASSERT_CONTAINS(exit_rec, want);
    ASSERT_CONTAINS(exit_rec, "\"cancel_requested\":[]");
    free(text);

    g_cancel_on_exit = "true";
    app_start(&a);
    place_resting(&a, id, sizeof id);
    app_stop(&a);
    text = slurp(path);
    ASSERT(text != NULL);
    exit_rec = strrchr(text, '\n');
    while (exit_rec > text && exit_rec[-1] != '\n')
        exit_rec--;
    ASSERT_CONTAINS(exit_rec, "\"kind\":\"exit\"");
    ASSERT_CONTAINS(exit_rec, "\"cancel_on_exit\":true");
    ASSERT_CONTAINS(exit_rec, "\"working_orders_left\":[]");
    snprintf(want, sizeof want, "\"cancel_requested\":[{\"order_id\":\"%s\"", id);
    ASSERT_CONTAINS(exit_rec, want);
    free(text);
    uv_loop_close(&g_loop);
    fx_teardown();
}

TEST(journal_rate_window_survives_a_restart) {
    im_app a;
    waiter w;
    fx_setup();
    g_per_min = "1";
    uv_loop_init(&g_loop);
    app_start(&a);
    ASSERT_EQ(trade(&a, 10), 0);
    app_stop(&a);

    /* The rate limit is checked at placement. */
    app_start(&a);
    do_preview(&a, 10, &w);
    ASSERT(w.p.risk.approved);
    {
        char token[IM_TOKEN_LEN + 1];
        memcpy(token, w.p.token, sizeof token);
        do_place(&a, token, &w);
    }
    ASSERT_EQ(w.r.status, IM_ERISK);
    ASSERT(has_code(&w.r.risk, "RISK_RATE_LIMIT"));
    free(w.journal_at_answer);
    im_clock_advance(&a.clock, 61);
    ASSERT_EQ(trade(&a, 10), 0);
    app_stop(&a);
    uv_loop_close(&g_loop);
    fx_teardown();
}

static int refuse_if_changed(void *ud, const im_journal_state *st) {
    return st->orders != *(const int *)ud;
}

TEST(journal_guard_sees_the_other_writer_under_the_lock) {
    char err[512], path[256], *text;
    im_journal *a = NULL, *b = NULL;
    int seen;
    fx_setup();
    ASSERT_EQ(im_journal_open(g_dir, T0, &a, err, sizeof err), 0);
    ASSERT_EQ(im_journal_open(g_dir, T0, &b, err, sizeof err), 0);
    seen = im_journal_state_get(a)->orders;                   /* a decides on 0 */
    ASSERT_EQ(im_journal_append(b, T0, "order_sent", NULL), 0); /* b gets in first */
    ASSERT_EQ(im_journal_append_guarded(a, T0, "order_sent", cJSON_CreateObject(),
                                        refuse_if_changed, &seen),
              IM_ERISK);
    ASSERT(im_journal_error(a) == NULL);                        /* not a failure */
    ASSERT_EQ(im_journal_state_get(a)->orders, 1);
    seen = 1;
    ASSERT_EQ(im_journal_append_guarded(a, T0, "order_sent", NULL, refuse_if_changed, &seen), 0);
    ASSERT_EQ(im_journal_state_get(a)->orders, 2);
    today_path(path, sizeof path);
    text = slurp(path);
    ASSERT(text != NULL);
    ASSERT_EQ(count_of(text, "order_sent"), 2);
    free(text);
    im_journal_free(a);
    im_journal_free(b);
    fx_teardown();
}

TEST(journal_reports_orders_sent_without_an_answer) {
    char path[256], err[512], *text;
    im_journal *j = NULL;
    size_t n;
    const char(*refs)[IM_ORDER_REF_MAX];
    im_app a;
    fx_setup();
    today_path(path, sizeof path);
    /* A crash between sending im-x and hearing from the broker. */
    write_file(path, "{\"kind\":\"order_sent\",\"order_ref\":\"im-x\",\"notional\":1}\n"
                     "{\"kind\":\"order_sent\",\"order_ref\":\"im-y\",\"notional\":1}\n"
                     "{\"kind\":\"order_ack\",\"order_ref\":\"im-y\",\"status\":\"FILLED\"}\n");
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    refs = im_journal_unacked(j, &n);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(refs[0], "im-x");
    im_journal_free(j);

    uv_loop_init(&g_loop);
    app_start(&a);
    ASSERT_EQ(im_session_orders_today(a.session), 2);
    app_stop(&a);
    uv_loop_close(&g_loop);
    text = slurp(path);
    ASSERT(text != NULL);
    ASSERT_CONTAINS(text, "\"unacknowledged_order_refs\":[\"im-x\"]");
    free(text);
    fx_teardown();
}

/* The consecutive-reject breaker's count comes back after a restart:
 * counted refusals at place and broker rejections add up, an accepted
 * order or an operator's resume resets it, and a human's "no" (breaker
 * false) does not count. */
TEST(journal_rebuilds_the_reject_breaker_count) {
    char err[512];
    im_journal *j = NULL;
    cJSON *f;
    static const struct { const char *kind, *status; int breaker; int want; } steps[] = {
        {"place_reject", NULL, 1, 1},
        {"place_reject", NULL, 0, 1},         /* declined by a human */
        {"place_error", NULL, 0, 2},
        {"order_ack", "REJECTED", 0, 3},
        {"order_ack", "SUBMITTED", 0, 0},
        {"place_reject", NULL, 1, 1},
        {"resume", NULL, 0, 0},
        {"place_reject", NULL, 1, 1},
        {"place_reject", NULL, 1, 2},
    };
    fx_setup();
    ASSERT_EQ(im_journal_open(g_dir, T0, &j, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        f = cJSON_CreateObject();
        if (steps[i].status)
            cJSON_AddStringToObject(f, "status", steps[i].status);
        if (strcmp(steps[i].kind, "place_reject") == 0)
            cJSON_AddBoolToObject(f, "breaker", steps[i].breaker);
        ASSERT_EQ(im_journal_append(j, T0, steps[i].kind, f), 0);
        ASSERT_EQ(im_journal_state_get(j)->consecutive_rejects, steps[i].want);
    }
    im_journal_free(j);
    j = NULL;
    ASSERT_EQ(im_journal_open(g_dir, T0 + 60, &j, err, sizeof err), 0);
    ASSERT_EQ(im_journal_state_get(j)->consecutive_rejects, 2);
    im_journal_free(j);
    fx_teardown();
}

/* ---- read back -------------------------------------------------------- */

static unsigned g_seed = 12345;
static unsigned rnd(unsigned n) {
    g_seed = g_seed * 1103515245u + 12345u;
    return (g_seed >> 16) % n;
}

/* A field value of a few shapes: text with quotes, backslashes, control
 * characters and UTF-8, numbers, nested objects and arrays. */
static cJSON *rnd_value(int depth) {
    static const char *const texts[] = {"NVDA", "say \"hi\"", "back\\slash", "tab\there",
                                        "caf\xc3\xa9 \xe2\x82\xac", "", "line\nbreak"};
    cJSON *v;
    switch (depth > 2 ? rnd(3) : rnd(5)) {
    case 0: return cJSON_CreateString(texts[rnd(IM_ARRAY_SIZE(texts))]);
    case 1: return cJSON_CreateNumber((double)rnd(100000) / 100 - 250);
    case 2: return rnd(2) ? cJSON_CreateBool(rnd(2)) : cJSON_CreateNull();
    case 3:
        v = cJSON_CreateArray();
        for (unsigned i = rnd(4); i > 0; i--)
            cJSON_AddItemToArray(v, rnd_value(depth + 1));
        return v;
    default:
        v = cJSON_CreateObject();
        for (unsigned i = rnd(4); i > 0; i--) {
            char k[16];
            snprintf(k, sizeof k, "k%u", rnd(10));
            cJSON_AddItemToObject(v, k, rnd_value(depth + 1));
        }
        return v;
    }
}

/* The last line of the file cut at a random byte and written back without
 * its newline, as a crash mid-append leaves it. */
static void tear_last_line(const char *path) {
    char *text = slurp(path), *last;
    size_t len, cut;
    FILE *f;
    ASSERT(text != NULL);
    len = strlen(text);
    ASSERT(len > 2 && text[len - 1] == '\n');
    text[len - 1] = '\0';
    last = strrchr(text, '\n');
    last = last ? last + 1 : text;
    cut = 1 + rnd((unsigned)(strlen(last) - 1));
    f = fopen(path, "ab");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(last, 1, cut, f), cut);
    fclose(f);
    free(text);
}

/* What a restart reads back equals what the writer kept as it wrote:
 * counters, the kill switch and its reason, the reject breaker, the orders
 * sent and those without an answer, the redeemed tokens; and every torn
 * record is counted, of whatever kind. Records of kinds that change
 * nothing are read without a parse, the others parsed. */
TEST(journal_reads_back_what_it_wrote) {
    static const char *const other[] = {"preview", "fill", "order_status", "startup", "exit",
                                        "connection"};
    char err[512], path[256], hashes[64][IM_JOURNAL_HASH_HEX];
    size_t nhash = 0;
    int torn = 0;
    im_journal *w = NULL, *r = NULL;
    const im_journal_state *a, *b;
    const im_journal_sent *sa, *sb;
    size_t na, nb;

    fx_setup();
    today_path(path, sizeof path);
    ASSERT_EQ(im_journal_open(g_dir, T0, &w, err, sizeof err), 0);
    for (int i = 0; i < 600; i++) {
        cJSON *f = cJSON_CreateObject(), *o;
        const char *kind;
        char ref[32], tok[40];
        snprintf(ref, sizeof ref, "ibkr-mcp-%u", rnd(40));
        switch (rnd(12)) {
        case 0:
            kind = "order_sent";
            o = cJSON_AddObjectToObject(f, "order");
            cJSON_AddStringToObject(o, "symbol", rnd(2) ? "NVDA" : "AAPL");
            cJSON_AddStringToObject(o, "side", rnd(2) ? "BUY" : "SELL");
            cJSON_AddNumberToObject(o, "quantity", 1 + rnd(500));
            cJSON_AddNumberToObject(f, "notional", (double)rnd(10000000) / 100);
            cJSON_AddStringToObject(f, "order_ref", ref);
            break;
        case 1:
            kind = "order_ack";
            cJSON_AddStringToObject(f, "order_ref", ref);
            cJSON_AddStringToObject(f, "status", rnd(3) ? "SUBMITTED" : "REJECTED");
            break;
        case 2: kind = rnd(2) ? "place_error" : "reconciled";
            cJSON_AddStringToObject(f, "order_ref", ref);
            break;
        case 3:
            kind = "place_reject";
            cJSON_AddBoolToObject(f, "breaker", rnd(2));
            break;
        case 4:
            kind = "redeem";
            snprintf(tok, sizeof tok, "token-%d", i);
            if (nhash < IM_ARRAY_SIZE(hashes)) {
                im_journal_token_hash(tok, hashes[nhash]);
                cJSON_AddStringToObject(f, "token_hash", hashes[nhash++]);
            }
            break;
        case 5:
            kind = rnd(3) ? "halt" : "resume";
            cJSON_AddStringToObject(f, "reason", rnd(2) ? "stop \"now\"" : "drawdown");
            break;
        default:
            kind = other[rnd(IM_ARRAY_SIZE(other))];
            break;
        }
        for (unsigned k = rnd(4); k > 0; k--) {
            char key[16];
            snprintf(key, sizeof key, "x%u", k);
            cJSON_AddItemToObject(f, key, rnd_value(0));
        }
        ASSERT_EQ(im_journal_append(w, T0 + i, kind, f), 0);
        if (rnd(12) == 0) {
            tear_last_line(path);
            torn++;
        }
    }
    ASSERT(torn > 10);

    ASSERT_EQ(im_journal_open(g_dir, T0 + 600, &r, err, sizeof err), 0);
    a = im_journal_state_get(w);
    b = im_journal_state_get(r);
    ASSERT_EQ(b->torn_lines, torn);
    ASSERT_EQ(b->orders, a->orders);
    ASSERT(b->notional == a->notional);
    ASSERT_EQ(b->halted, a->halted);
    ASSERT_EQ(b->halts, a->halts);
    ASSERT_STR_EQ(b->halt_reason, a->halt_reason);
    ASSERT_EQ(b->consecutive_rejects, a->consecutive_rejects);
    sa = im_journal_sent_list(w, &na);
    sb = im_journal_sent_list(r, &nb);
    ASSERT_EQ(nb, na);
    for (size_t i = 0; i < na; i++) {
        ASSERT(sb[i].t == sa[i].t);
        ASSERT_STR_EQ(sb[i].order.symbol, sa[i].order.symbol);
        ASSERT(sb[i].order.quantity == sa[i].order.quantity);
    }
    {
        const char (*ua)[IM_ORDER_REF_MAX] = im_journal_unacked(w, &na);
        const char (*ub)[IM_ORDER_REF_MAX] = im_journal_unacked(r, &nb);
        ASSERT_EQ(nb, na);
        for (size_t i = 0; i < na; i++)
            ASSERT_STR_EQ(ub[i], ua[i]);
    }
    for (size_t i = 0; i < nhash; i++)
        ASSERT(im_journal_token_used(r, hashes[i]));
    im_journal_free(w);
    im_journal_free(r);
    fx_teardown();
}
