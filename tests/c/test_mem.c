/* test_mem.c: the start-up prefault backs the heap in one call and keeps it. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
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
        /* A burst of small blocks, all freed: the trim keeps the pad. */
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
