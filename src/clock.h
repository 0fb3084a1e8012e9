/* clock.h: the injected clock. The simulator, token expiry, the trading day
 * and rate windows all read one im_clock, so tests can freeze it and move it
 * by hand. Times are seconds since the Unix epoch, as doubles. */
#ifndef IM_CLOCK_H
#define IM_CLOCK_H

#include <stdint.h>

typedef struct im_clock {
    double start;      /* epoch seconds at base_ns */
    uint64_t base_ns;  /* monotonic reading when the clock started */
    double offset;     /* seconds added by im_clock_advance() */
    int frozen;        /* 1: only im_clock_advance() moves it */
} im_clock;

/* A clock that starts at start_epoch and runs with real elapsed time. */
void im_clock_init(im_clock *c, double start_epoch);
/* A clock that stands still at start_epoch until advanced. */
void im_clock_init_frozen(im_clock *c, double start_epoch);
/* Current time in epoch seconds. */
double im_clock_now(const im_clock *c);
/* Moves the clock forward by secs (>= 0). */
void im_clock_advance(im_clock *c, double secs);

/* Writes the New York trading date of epoch time t as "YYYY-MM-DD" into
 * out (at least 11 bytes), using the system tz database. Returns 0 or
 * IM_EINVAL. */
int im_clock_ny_date(double t, char *out, unsigned outlen);
/* Seconds since New York midnight of t (for session-hour checks). */
int im_clock_ny_seconds_of_day(double t, int *sod, int *weekday);
/* Parses "YYYY-MM-DDTHH:MM:SSZ", "YYYY-MM-DDTHH:MM:SS±HH:MM" or plain
 * epoch seconds. Returns 0 or IM_EINVAL. */
int im_clock_parse_time(const char *s, double *out);
/* Formats t as ISO-8601 UTC with milliseconds into out (>= 32 bytes). */
void im_clock_format_utc(double t, char *out, unsigned outlen);

/* The default simulator start: Tuesday 2025-06-10 10:00:00 New York time,
 * inside regular trading hours, so the demo and tests behave the same at
 * any hour of any day. */
#define IM_CLOCK_DEFAULT_SIM_START 1749564000.0

#endif
