/* tws_decode.c: the TWS decode benchmark (tests/bench/README.md).
 *
 *   tws_decode gen FILE [FRAMES]     writes a deterministic stream of
 *                                    tickPrice/tickSize frames (1,000,000)
 *   tws_decode run FILE [CHUNK RUNS] decodes it RUNS times (5), fed in
 *                                    CHUNK-byte reads (65536) as a socket
 *                                    would deliver them, reading every
 *                                    field with the typed getters
 *
 * "run" prints one JSON line: frames, bytes, the best and median time, and
 * messages per second from the best run, with a checksum (count and sum of
 * tickPrice prices) that tws_decode_stoqey.mjs computes the same way, so
 * both sides are seen to decode the same values. It never judges a
 * timing. Built by run.sh straight from src/tws_codec.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "tws_codec.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

/* xorshift64*: the same stream on every machine. */
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static int gen(const char *path, long frames) {
    static const int price_types[] = {IM_TWS_TICK_BID, IM_TWS_TICK_ASK, IM_TWS_TICK_LAST,
                                      IM_TWS_TICK_DELAYED_BID, IM_TWS_TICK_DELAYED_ASK,
                                      IM_TWS_TICK_DELAYED_LAST};
    static const int size_types[] = {IM_TWS_TICK_BID_SIZE, IM_TWS_TICK_ASK_SIZE,
                                     IM_TWS_TICK_LAST_SIZE, IM_TWS_TICK_VOLUME};
    im_tws_writer w;
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    im_tws_writer_init(&w);
    for (long i = 0; i < frames; i++) {
        uint64_t r = rng();
        int ticker = 1000 + (int)(r % 50);
        /* A size: whole shares mostly, now and then a fraction. */
        double size = (r >> 8) % 16 == 0 ? (double)((r >> 16) % 1000) + 0.5
                                         : (double)(1 + (r >> 16) % 5000);
        if (r >> 63) {
            /* Prices in cents from 1.00 to 999.99, written as TWS does. */
            double price = (double)(100 + (r >> 24) % 99900) / 100.0;
            im_tws_begin(&w, IM_TWS_IN_TICK_PRICE);
            im_tws_put_int(&w, 6);
            im_tws_put_int(&w, ticker);
            im_tws_put_int(&w, price_types[(r >> 40) % 6]);
            im_tws_put_dbl(&w, price);
            im_tws_put_dec(&w, size);
            im_tws_put_int(&w, (int)((r >> 44) % 8));
        } else {
            im_tws_begin(&w, IM_TWS_IN_TICK_SIZE);
            im_tws_put_int(&w, 6);
            im_tws_put_int(&w, ticker);
            im_tws_put_int(&w, size_types[(r >> 40) % 4]);
            im_tws_put_dec(&w, size);
        }
        if (im_tws_end(&w) != 0) {
            fprintf(stderr, "tws_decode: writer failed\n");
            return 1;
        }
        if (w.len > (1u << 20)) {
            fwrite(w.data, 1, w.len, f);
            im_tws_writer_reset(&w);
        }
    }
    fwrite(w.data, 1, w.len, f);
    im_tws_writer_free(&w);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct result {
    long frames, prices, errors;
    double price_sum, size_sum;
} result;

/* One pass over the stream, fed in chunks, every field read. */
static result decode(const char *data, size_t len, size_t chunk) {
    im_tws_reader r;
    im_tws_msg m;
    result res = {0, 0, 0, 0, 0};
    int rc;
    im_tws_reader_init(&r, 0);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (im_tws_reader_feed(&r, data + off, n) != 0) {
            res.errors++;
            break;
        }
        while ((rc = im_tws_reader_next(&r, &m)) == 1) {
            res.frames++;
            if (m.id == IM_TWS_IN_TICK_PRICE) {
                double size;
                im_tws_get_int(&m);                     /* version */
                im_tws_get_int(&m);                     /* tickerId */
                im_tws_get_int(&m);                     /* tickType */
                res.price_sum += im_tws_get_dbl(&m);
                size = im_tws_get_dec(&m);
                if (size != IM_TWS_UNSET_DBL)
                    res.size_sum += size;
                im_tws_get_int(&m);                     /* attrMask */
                res.prices++;
            } else if (m.id == IM_TWS_IN_TICK_SIZE) {
                double size;
                im_tws_get_int(&m);
                im_tws_get_int(&m);
                im_tws_get_int(&m);
                size = im_tws_get_dec(&m);
                if (size != IM_TWS_UNSET_DBL)
                    res.size_sum += size;
            }
            if (im_tws_finish(&m) != 0)
                res.errors++;
        }
        if (rc < 0) {
            res.errors++;
            break;
        }
    }
    im_tws_reader_free(&r);
    return res;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run(const char *path, size_t chunk, int runs) {
    FILE *f = fopen(path, "rb");
    char *data;
    long len;
    double times[64];
    result res = {0, 0, 0, 0, 0};
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)len + 1);
    if (data == NULL || fread(data, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "tws_decode: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    if (runs < 1)
        runs = 1;
    if (runs > 64)
        runs = 64;
    decode(data, (size_t)len, chunk);   /* warm-up: page in, grow the buffer */
    for (int i = 0; i < runs; i++) {
        double t0 = now();
        res = decode(data, (size_t)len, chunk);
        times[i] = now() - t0;
    }
    qsort(times, (size_t)runs, sizeof times[0], cmp_dbl);
    printf("{\"frames\":%ld,\"bytes\":%ld,\"chunk\":%zu,\"runs\":%d,\"best_s\":%.6f,"
           "\"median_s\":%.6f,\"msgs_per_s\":%.0f,\"ns_per_msg\":%.1f,\"errors\":%ld,"
           "\"prices\":%ld,\"price_sum\":%.6f,\"size_sum\":%.3f}\n",
           res.frames, len, chunk, runs, times[0], times[runs / 2],
           (double)res.frames / times[0], times[0] * 1e9 / (double)res.frames, res.errors,
           res.prices, res.price_sum, res.size_sum);
    free(data);
    return res.errors ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], argc > 3 ? atol(argv[3]) : 1000000);
    if (argc >= 3 && strcmp(argv[1], "run") == 0)
        return run(argv[2], argc > 3 ? (size_t)atol(argv[3]) : 65536, argc > 4 ? atoi(argv[4]) : 5);
    fprintf(stderr, "usage: tws_decode gen FILE [FRAMES] | run FILE [CHUNK RUNS]\n");
    return 2;
}
