/* app.h: wiring shared by every mode that runs a session (serve, demo, the
 * Lua test host): configuration -> clock -> broker -> session -> tools.
 * Uses config, clock, journal, sim, session and tools. */
#ifndef IM_APP_H
#define IM_APP_H

#include <uv.h>

#include "clock.h"
#include "config.h"
#include "journal.h"
#include "policy.h"
#include "session.h"
#include "sim.h"
#include "tools.h"

typedef struct im_app {
    uv_loop_t *loop;
    im_config cfg;
    im_clock clock;
    im_sim *sim;             /* the sim backend, when that is the backend */
    im_broker *broker;
    im_session *session;
    im_tools *tools;
    im_policies *policies;
    im_journal *journal;     /* in cfg.state_dir; a broken one halts trading */
    char policy_dir[1024];   /* where the policies came from ("" = none) */
} im_app;

/* Loads the configuration through getenv_fn and builds everything. With
 * frozen set, the simulator clock stands still (demo, tests). On failure
 * returns a negative code with a sentence in err; nothing is left open. */
int im_app_init(im_app *a, uv_loop_t *loop, const char *(*getenv_fn)(const char *), int frozen,
                char *err, size_t errlen);
/* After the first reply has gone out: fsyncs the journal records written
 * at start-up (im_journal_defer_sync); a failure halts trading. Until then,
 * or without it, the next journal append or im_app_close does it. */
void im_app_started(im_app *a);
/* Journals the exit, frees the tools and the session and closes the
 * broker; the caller must
 * run the loop afterwards so the broker's handles finish closing. */
void im_app_close(im_app *a);
/* Reloads the operator policies from a->policy_dir: the whole set is
 * loaded and checked first, then put in force at once; a set that fails
 * to load leaves the running one in place and err says why. Journals the
 * outcome ("policies_reloaded" with the old and new set hashes and
 * origin). Returns 0 or the load error. */
int im_app_reload_policies(im_app *a, const char *origin, char *err, size_t errlen);

/* Finds the installed or source-tree folder `sub` (e.g. "lua/tools"):
 * beside the binary in ../share/ibkr-mcp/sub, then ../sub, then the
 * source tree the binary was built from. Returns 0 or IM_ENOENT. */
int im_app_find_dir(const char *sub, char *out, size_t outlen);

#endif
