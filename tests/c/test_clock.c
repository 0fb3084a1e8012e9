/* test_clock.c: the injected clock and the New York calendar. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "common.h"
#include "error.h"
#include "test.h"

TEST(frozen_clock_moves_only_when_advanced) {
    im_clock c;
    im_clock_init_frozen(&c, 1000.0);
    ASSERT_NEAR(im_clock_now(&c), 1000.0, 0);
    im_clock_advance(&c, 2.5);
    ASSERT_NEAR(im_clock_now(&c), 1002.5, 0);
    im_clock_advance(&c, -5);          /* never backwards */
    im_clock_advance(&c, NAN);
    ASSERT_NEAR(im_clock_now(&c), 1002.5, 0);
}

TEST(running_clock_starts_at_its_epoch) {
    im_clock c;
    im_clock_init(&c, 5000.0);
    double t = im_clock_now(&c);
    ASSERT(t >= 5000.0 && t < 5001.0);
}

TEST(default_start_is_a_tuesday_inside_trading_hours) {
    int sod, wday;
    char day[16];
    ASSERT_EQ(im_clock_ny_seconds_of_day(IM_CLOCK_DEFAULT_SIM_START, &sod, &wday), 0);
    ASSERT_EQ(wday, 2);
    ASSERT_EQ(sod, 10 * 3600);
    ASSERT_EQ(im_clock_ny_date(IM_CLOCK_DEFAULT_SIM_START, day, sizeof day), 0);
    ASSERT_STR_EQ(day, "2025-06-10");
}

TEST(new_york_date_follows_dst_not_utc) {
    char day[16];
    double t;
    /* 2025-06-11 03:30 UTC is still June 10 in New York (EDT, UTC-4). */
    ASSERT_EQ(im_clock_parse_time("2025-06-11T03:30:00Z", &t), 0);
    ASSERT_EQ(im_clock_ny_date(t, day, sizeof day), 0);
    ASSERT_STR_EQ(day, "2025-06-10");
    /* 2025-01-15 04:30 UTC is 23:30 on Jan 14 in New York (EST, UTC-5). */
    ASSERT_EQ(im_clock_parse_time("2025-01-15T04:30:00Z", &t), 0);
    ASSERT_EQ(im_clock_ny_date(t, day, sizeof day), 0);
    ASSERT_STR_EQ(day, "2025-01-14");
    /* ...and 05:00 UTC is midnight: the new day. */
    ASSERT_EQ(im_clock_parse_time("2025-01-15T05:00:00Z", &t), 0);
    ASSERT_EQ(im_clock_ny_date(t, day, sizeof day), 0);
    ASSERT_STR_EQ(day, "2025-01-15");
}

TEST(parse_time_forms) {
    double t;
    ASSERT_EQ(im_clock_parse_time("1749564000", &t), 0);
    ASSERT_NEAR(t, 1749564000.0, 0);
    ASSERT_EQ(im_clock_parse_time("2025-06-10T10:00:00-04:00", &t), 0);
    ASSERT_NEAR(t, 1749564000.0, 0);
    ASSERT_EQ(im_clock_parse_time("2025-06-10T14:00:00Z", &t), 0);
    ASSERT_NEAR(t, 1749564000.0, 0);
    ASSERT_EQ(im_clock_parse_time("2025-06-10 14:00", &t), IM_EINVAL);
    ASSERT_EQ(im_clock_parse_time("2025-13-10T14:00:00Z", &t), IM_EINVAL);
    ASSERT_EQ(im_clock_parse_time("nan", &t), IM_EINVAL);
    ASSERT_EQ(im_clock_parse_time("-5", &t), IM_EINVAL);
    ASSERT_EQ(im_clock_parse_time("", &t), IM_EINVAL);
    ASSERT_EQ(im_clock_parse_time("2025-06-10T14:00:00Zjunk", &t), IM_EINVAL);
}

TEST(format_utc_has_milliseconds) {
    char buf[40];
    im_clock_format_utc(1749564000.25, buf, sizeof buf);
    ASSERT_STR_EQ(buf, "2025-06-10T14:00:00.250Z");
}

/* The digit-by-digit writer against gmtime_r + snprintf over 1970..9999:
 * every leap day, century and era boundary included. */
TEST(format_utc_matches_gmtime) {
    char got[40], want[96];
    unsigned long long x = 0x9E3779B97F4A7C15ULL;
    double samples[] = {0, 0.999, 86399.5, 951782400, 951868800, 4107456000.0, 4107542400.0,
                        253402300799.999, 1709164800, 1709251199.5};
    for (int i = 0; i < 200000 + (int)IM_ARRAY_SIZE(samples); i++) {
        double t;
        if (i < (int)IM_ARRAY_SIZE(samples)) {
            t = samples[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t = (double)(x % 253402300800ULL) + (double)(x % 1000) / 1000.0;
        }
        struct tm tm;
        time_t tt = (time_t)floor(t);
        int ms = (int)((t - floor(t)) * 1000.0);
        gmtime_r(&tt, &tm);
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms > 999 ? 999 : ms);
        im_clock_format_utc(t, got, sizeof got);
        ASSERT_STR_EQ(got, want);
    }
}
