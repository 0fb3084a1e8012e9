/* test_mem.c: the start-up prefault backs the heap in one call and keeps it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem.h"
#include "test.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

#if defined(__GLIBC__) && !defined(SANITIZED)
/* Resident and total kB of the [heap] mapping; -1 when there is none. */
static long heap_kb(const char *field) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in_heap = 0;
    long kb = -1;
    ASSERT(f != NULL);
    while (fgets(line, sizeof line, f)) {
        /* A mapping's header starts with its address range; fields with a name. */
        if (strchr("0123456789abcdef", line[0]) && strchr(line, '-') < strchr(line, ' '))
            in_heap = strstr(line, "[heap]") != NULL;
        else if (in_heap && strncmp(line, field, strlen(field)) == 0) {
            kb = strtol(line + strlen(field), NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Whether p lies in the [heap] mapping (the brk heap, not a mapping of its own). */
static int in_heap(const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    ASSERT(f != NULL);
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            found = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    }
    fclose(f);
    return found;
}

/* Whether this kernel knows MADV_POPULATE_WRITE (5.14 and later). */
static int kernel_populates(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok;
    ASSERT(p != MAP_FAILED);
    ok = madvise(p, (size_t)page, MADV_POPULATE_WRITE) == 0;
    munmap(p, (size_t)page);
    return ok;
}

#endif

TEST(prefault_backs_the_heap_at_once) {
    int rc = im_mem_prefault(IM_MEM_PREFAULT);
#if defined(__GLIBC__) && !defined(SANITIZED)
    if (!kernel_populates()) {
        printf("  (kernel without MADV_POPULATE_WRITE: rc %d, nothing to check)\n", rc);
        return;
    }
    ASSERT_EQ(rc, 0);
    /* The whole pad is resident before anything used it. */
    ASSERT(heap_kb("Size:") >= IM_MEM_PREFAULT / 1024);
    ASSERT(heap_kb("Rss:") >= IM_MEM_PREFAULT / 1024);
    {
        /* A large transient block (glibc's default would map it apart and
         * unmap it on free, faulting it in anew each time) comes from the
         * heap, and the heap keeps it once freed. */
        long before;
        void *big = malloc(600 * 1024);
        ASSERT(big != NULL);
        ASSERT(in_heap(big));
        memset(big, 1, 600 * 1024);
        before = heap_kb("Rss:");
        free(big);
        ASSERT(heap_kb("Rss:") >= before);
    }
    {
        /* A burst of small blocks, all freed: the heap stays backed. */
        enum { N = 20000 };
        static void *blocks[N];
        for (int i = 0; i < N; i++) {
            blocks[i] = malloc(100);
            ASSERT(blocks[i] != NULL);
            memset(blocks[i], i & 0xff, 100);
        }
        for (int i = 0; i < N; i++)
            free(blocks[i]);
        ASSERT(heap_kb("Rss:") >= IM_MEM_PREFAULT / 1024);
    }
#else
    /* Another allocator: the call says it did nothing, and malloc works. */
    ASSERT_EQ(rc, -1);
    free(malloc(64));
#endif
}

TEST(prefault_refuses_silly_sizes) {
    ASSERT_EQ(im_mem_prefault(0), -1);
    ASSERT_EQ(im_mem_prefault((size_t)1 << 40), -1);
    free(malloc(64));
}

TEST(small_blocks_come_back_round) {
    size_t before = im_mem_cached();
    unsigned char *a = im_mem_get(40), *b;
    ASSERT(a != NULL);
    memset(a, 0xab, 40);
    im_mem_put(a, 40);
    b = im_mem_get(48);   /* the same 16-byte class (33..48) */
    ASSERT(b == a);       /* last in, first out */
    ASSERT_EQ(im_mem_cached(), before);
    memset(b, 0xcd, 48);  /* the whole class fits: ASan would catch an overrun */
    im_mem_put(b, 48);
    {
        /* Another class never hands out that block. */
        unsigned char *c = im_mem_get(64);
        ASSERT(c != NULL);
        ASSERT(c != b);   /* b waits in its own class */
        memset(c, 1, 64);
        im_mem_put(c, 64);
    }
    {
        /* Past IM_MEM_SMALL: plain malloc and free, nothing cached. */
        size_t n = im_mem_cached();
        void *big = im_mem_get(IM_MEM_SMALL + 1);
        ASSERT(big != NULL);
        memset(big, 2, IM_MEM_SMALL + 1);
        im_mem_put(big, IM_MEM_SMALL + 1);
        ASSERT_EQ(im_mem_cached(), n);
    }
}

TEST(small_blocks_kept_up_to_the_cap) {
    enum { N = IM_MEM_KEEP + 100 };
    static void *blocks[N];
    size_t before = im_mem_cached();
    for (int i = 0; i < N; i++)
        ASSERT((blocks[i] = im_mem_get(200)) != NULL);
    for (int i = 0; i < N; i++)
        im_mem_put(blocks[i], 200);
    /* That class held at most what it had before; now exactly the cap. */
    ASSERT(im_mem_cached() >= IM_MEM_KEEP);
    ASSERT(im_mem_cached() <= before + IM_MEM_KEEP);
}

TEST(usable_sizes_are_the_classes) {
    ASSERT_EQ(im_mem_usable(0), 16);
    ASSERT_EQ(im_mem_usable(1), 16);
    ASSERT_EQ(im_mem_usable(16), 16);
    ASSERT_EQ(im_mem_usable(17), 32);
    ASSERT_EQ(im_mem_usable(IM_MEM_SMALL), IM_MEM_SMALL);
    ASSERT_EQ(im_mem_usable(IM_MEM_SMALL + 1), IM_MEM_SMALL + 1);
}

TEST(resize_keeps_contents_across_classes) {
    static const size_t steps[] = {1, 15, 16, 17, 100, 256, 257, 1000, 300, 256, 40, 3};
    unsigned char *p = im_mem_resize(NULL, 0, 1);
    size_t size = 1;
    ASSERT(p != NULL);
    p[0] = 7;
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i], keep = size < n ? size : n;
        unsigned char *q = im_mem_resize(p, size, n);
        ASSERT(q != NULL);
        for (size_t k = 0; k < keep; k++)
            ASSERT_EQ(q[k], (unsigned char)(k * 31 + 7));
        for (size_t k = 0; k < n; k++)
            q[k] = (unsigned char)(k * 31 + 7);
        p = q;
        size = n;
    }
    im_mem_put(p, size);
}

TEST(alloc_and_free_without_sizes) {
    void *blocks[400];
    for (size_t n = 0; n < 400; n++) {
        blocks[n] = im_mem_alloc(n);
        ASSERT(blocks[n] != NULL);
        ASSERT_EQ((uintptr_t)blocks[n] % 16, 0);
        memset(blocks[n], (int)n, n);
    }
    for (size_t n = 0; n < 400; n++) {
        for (size_t k = 0; k < n; k++)
            ASSERT_EQ(((unsigned char *)blocks[n])[k], (unsigned char)n);
        im_mem_free(blocks[n]);
    }
    im_mem_free(NULL);
    ASSERT(im_mem_alloc(SIZE_MAX) == NULL);
}

/* Runs fn in a child; returns whether the child stopped abnormally. */
static int dies(void (*fn)(void)) {
    int status;
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT(pid != -1);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    ASSERT(waitpid(pid, &status, 0) == pid);
    return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void free_foreign_block(void) {
    unsigned char *p = calloc(1, 64);
    im_mem_free(p + 16);   /* a header of zeros: no tag */
}

static void free_twice(void) {
    void *p = im_mem_alloc(40);
    im_mem_free(p);
    im_mem_free(p);
}

static void free_after_underrun(void) {
    unsigned char *p = im_mem_alloc(40);
    memset(p - 8, 0x41, 8);   /* the tag, overwritten */
    im_mem_free(p);
}

static void free_properly(void) {
    void *p = im_mem_alloc(40);
    im_mem_free(p);
    p = im_mem_alloc(40);
    im_mem_free(p);
}

TEST(alloc_header_stops_foreign_and_double_frees) {
    ASSERT(!dies(free_properly));
    ASSERT(dies(free_foreign_block));
    ASSERT(dies(free_twice));
    ASSERT(dies(free_after_underrun));
}

#ifdef SANITIZED
static void use_after_put(void) {
    unsigned char *p = im_mem_get(40);
    im_mem_put(p, 40);
    p[20] = 1;            /* cached, poisoned */
}

static void overrun_into_the_slack(void) {
    unsigned char *p = im_mem_get(40);
    p[40] = 1;            /* the class has 48 bytes; 40 were asked for */
}
#endif

/* Under ASan the cache stays on and what it holds is poisoned. */
TEST(sanitizer_sees_cached_blocks) {
#ifdef SANITIZED
    ASSERT(dies(use_after_put));
    ASSERT(dies(overrun_into_the_slack));
#else
    printf("  (not a sanitizer build: nothing to check)\n");
#endif
}
