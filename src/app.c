/* app.c: start-up wiring (app.h). */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "tws.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int im_app_find_dir(const char *sub, char *out, size_t outlen) {
    char exe[1024];
    size_t n = sizeof exe;
    if (uv_exepath(exe, &n) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, outlen, "%s/../share/ibkr-mcp/%s", exe, sub);
            if (is_dir(out))
                return 0;
            snprintf(out, outlen, "%s/../%s", exe, sub);
            if (is_dir(out))
                return 0;
        }
    }
#ifdef IM_SOURCE_DIR
    snprintf(out, outlen, "%s/%s", IM_SOURCE_DIR, sub);
    if (is_dir(out))
        return 0;
#endif
    return IM_ENOENT;
}

int im_app_init(im_app *a, uv_loop_t *loop, const char *(*getenv_fn)(const char *), int frozen,
                char *err, size_t errlen) {
    im_sim_opts so;
    im_session_opts seo;
    const char *account;
    char dir[1024];
    uint64_t t0 = uv_hrtime(), t_backend, t_policies, t_session;
    int rc;

    memset(a, 0, sizeof *a);
    a->loop = loop;
    im_config_defaults(&a->cfg);
    rc = im_config_load(&a->cfg, getenv_fn, err, errlen);
    if (rc != 0)
        return rc;
    im_log_set_level(a->cfg.log_level);
    if (strcmp(a->cfg.backend, "tws") == 0) {
        /* A live backend runs on the wall clock: token expiry, the trading
         * day and quote ages are real time. */
        struct timespec ts;
        im_tws_opts to;
        im_tws *tws;
        clock_gettime(CLOCK_REALTIME, &ts);
        im_clock_init(&a->clock, (double)ts.tv_sec + ts.tv_nsec / 1e9);
        memset(&to, 0, sizeof to);
        to.host = a->cfg.host;
        to.port = a->cfg.port;
        to.client_id = a->cfg.client_id;
        to.account_id = a->cfg.account_id;
        to.clock = &a->clock;
        rc = im_tws_new(loop, &to, &tws);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start the TWS backend: %s", im_strerror(rc));
            return rc;
        }
        a->broker = im_tws_broker(tws);
        account = a->cfg.account_id;
    } else {
        if (frozen || a->cfg.sim_freeze)
            im_clock_init_frozen(&a->clock, a->cfg.sim_start);
        else
            im_clock_init(&a->clock, a->cfg.sim_start);
        memset(&so, 0, sizeof so);
        so.seed = a->cfg.sim_seed;
        so.starting_cash = a->cfg.sim_cash;
        so.account_id = a->cfg.account_id[0] ? a->cfg.account_id : "DU0000001";
        so.clock = &a->clock;
        so.state_dir = a->cfg.state_dir[0] ? a->cfg.state_dir : NULL;
        so.reset = a->cfg.sim_reset;
        rc = im_sim_open(loop, &so, &a->sim, err, errlen);
        if (rc != 0)
            return rc;
        a->broker = im_sim_broker(a->sim);
        account = so.account_id;
    }

    t_backend = uv_hrtime();
    if (a->cfg.policy_dir[0]) {
        snprintf(dir, sizeof dir, "%s", a->cfg.policy_dir);
    } else if (im_app_find_dir("policies", dir, sizeof dir) != 0) {
        im_warn("no policies folder found beside the binary; no operator policies are loaded");
        dir[0] = '\0';
    }
    snprintf(a->policy_dir, sizeof a->policy_dir, "%s", dir);
    if (dir[0]) {
        rc = im_policies_load(dir, NULL, &a->policies, err, errlen);
        if (rc != 0) {
            im_app_close(a);
            return rc;
        }
        im_info("%zu policies from %s (set %.16s)", im_policies_count(a->policies), dir,
                im_policies_hash(a->policies));
    }

    /* The journal: a state directory that cannot be used does not stop
     * start-up (reads still work); it halts trading, and get_status says
     * why. Only no state directory at all, or no memory, stops it. */
    t_policies = uv_hrtime();
    rc = im_journal_open(a->cfg.state_dir, im_clock_now(&a->clock), &a->journal, err, errlen);
    if (rc != 0 && a->journal == NULL) {
        im_app_close(a);
        return rc;
    }
    if (rc != 0)
        im_warn("%s: trading is halted until it is fixed", err);

    memset(&seo, 0, sizeof seo);
    seo.config = &a->cfg;
    seo.broker = a->broker;
    seo.clock = &a->clock;
    seo.account_id = account;
    seo.policies = a->policies;
    seo.journal = a->journal;
    /* The records the session writes as it starts reach the file now and
     * the disk after the first turn of the loop (im_app_started). */
    im_journal_defer_sync(a->journal, 1);
    rc = im_session_new(&seo, &a->session);
    im_journal_defer_sync(a->journal, 0);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the session: %s", im_strerror(rc));
        im_app_close(a);
        return rc;
    }

    t_session = uv_hrtime();
    if (a->cfg.tools_dir[0]) {
        snprintf(dir, sizeof dir, "%s", a->cfg.tools_dir);
    } else if (im_app_find_dir("lua/tools", dir, sizeof dir) != 0) {
        snprintf(err, errlen, "cannot find the Lua tools folder; set IBKR_TOOLS_DIR");
        im_app_close(a);
        return IM_ENOENT;
    }
    rc = im_tools_new(a->session, dir, err, errlen, &a->tools);
    if (rc != 0) {
        im_app_close(a);
        return rc;
    }
    im_info("ready: %zu tools from %s; backend %s, trading %s", im_tools_count(a->tools), dir,
            a->cfg.backend, a->cfg.trading_enabled ? "ENABLED" : "disabled");
    /* Where start-up went, for whoever chases the spawn time. */
    im_debug("start-up took %.2f ms: backend %.2f, policies %.2f, journal and session %.2f, "
             "tools %.2f", (uv_hrtime() - t0) / 1e6, (t_backend - t0) / 1e6,
             (t_policies - t_backend) / 1e6, (t_session - t_policies) / 1e6,
             (uv_hrtime() - t_session) / 1e6);
    return 0;
}

void im_app_started(im_app *a) {
    if (a->journal != NULL && im_journal_sync(a->journal) != 0)
        im_session_journal_failed(a->session);
}

void im_app_close(im_app *a) {
    im_session_exit(a->session);
    /* The broker first: its close answers every pending operation with
     * IM_ECANCELED while the session and the tools that asked are still
     * alive to hear it. */
    if (a->broker)
        a->broker->ops->close(a->broker);
    a->broker = NULL;
    a->sim = NULL;
    im_tools_free(a->tools);
    a->tools = NULL;
    im_session_free(a->session);
    a->session = NULL;
    im_policies_free(a->policies);
    a->policies = NULL;
    im_journal_free(a->journal);
    a->journal = NULL;
}

int im_app_reload_policies(im_app *a, const char *origin, char *err, size_t errlen) {
    im_policies *fresh = NULL, *old = a->policies;
    char was[80];
    cJSON *f;
    int rc;
    if (a->policy_dir[0] == '\0') {
        snprintf(err, errlen, "no policies folder is in use (set IBKR_POLICY_DIR and restart)");
        return IM_ENOENT;
    }
    snprintf(was, sizeof was, "%s", old ? im_policies_hash(old) : "");
    rc = im_policies_load(a->policy_dir, NULL, &fresh, err, errlen);
    f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "dir", a->policy_dir);
    cJSON_AddStringToObject(f, "origin", origin ? origin : "");
    cJSON_AddStringToObject(f, "previous_hash", was);
    if (rc != 0) {
        /* The running set stays in force. */
        cJSON_AddBoolToObject(f, "ok", 0);
        cJSON_AddStringToObject(f, "error", err);
        im_session_record(a->session, "policies_reloaded", f);
        im_warn("policy reload from %s failed, the running set stays: %s", a->policy_dir, err);
        return rc;
    }
    im_session_set_policies(a->session, fresh);
    a->policies = fresh;
    im_policies_free(old);
    cJSON_AddBoolToObject(f, "ok", 1);
    cJSON_AddStringToObject(f, "hash", im_policies_hash(fresh));
    cJSON_AddNumberToObject(f, "count", (double)im_policies_count(fresh));
    im_session_record(a->session, "policies_reloaded", f);
    im_info("policies reloaded from %s by %s: %zu policies (set %.16s, was %.16s)", a->policy_dir,
            origin ? origin : "?", im_policies_count(fresh), im_policies_hash(fresh), was);
    return 0;
}
