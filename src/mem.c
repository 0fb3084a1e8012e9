/* mem.c: the start-up prefault and the small-block cache (mem.h).
 *
 * Why the prefault: on small VMs (Firecracker here) a page fault on fresh
 * anonymous memory costs about 12 us, a quarter of that per page when the
 * kernel backs a whole range in one madvise. Start-up touches some 200
 * heap pages while it compiles the tools and policies, so the faults
 * alone were 2-3 ms of a 10 ms spawn-to-initialize. */
#include "mem.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14; older kernels answer EINVAL */
#endif

/* A sanitizer's allocator does not use the brk heap: nothing to prepare. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_SANITIZED 1
#endif
#endif

/* glibc's own ceiling for its moving mmap threshold is 32 MiB; 1 MiB
 * covers every transient block of a busy day, and a larger one still gets
 * its own mapping (and gives it back when freed). */
#define MEM_MMAP_THRESHOLD (1024 * 1024)

int im_mem_prefault(size_t bytes) {
#if defined(__GLIBC__) && !defined(MEM_SANITIZED)
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo, hi;
    void *p, *q;
    if (bytes < 2 || bytes > MEM_MMAP_THRESHOLD || page <= 0)
        return -1;
    /* Any mallopt stops glibc from moving its thresholds as it goes (it
     * raises the mmap threshold to the size of each large block freed, up
     * to 32 MiB, and keeps twice that at the top of the heap), so they are
     * set here to where it would have taken them: large transient blocks
     * (a day's fills handed to a policy, the account's text) are then
     * reused from the heap instead of being mapped, faulted in and unmapped
     * on every call, and freed memory up to the trim threshold stays. */
    if (mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD) == 0 ||
        mallopt(M_TRIM_THRESHOLD, 2 * MEM_MMAP_THRESHOLD) == 0)
        return -1;
    /* Two halves, each below the threshold: they come from (and grow) the
     * heap, one after the other, and stay there, below the trim
     * threshold, once freed. */
    p = malloc(bytes / 2);
    q = malloc(bytes / 2);
    if (p == NULL || q == NULL) {
        free(p);
        free(q);
        return -1;
    }
    lo = (uintptr_t)p & ~((uintptr_t)page - 1);
    hi = (uintptr_t)sbrk(0);
    free(q);
    free(p);
    /* Only a heap top just above the block: anything else means this
     * malloc is not the brk heap we know. */
    if (hi <= lo || hi - lo > 2 * bytes + (size_t)page)
        return -1;
    return madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) == 0 ? 0 : -1;
#else
    (void)bytes;
    return -1;
#endif
}

/* ---- small blocks ---- */

#define MEM_GRAIN 16
#define MEM_CLASSES (IM_MEM_SMALL / MEM_GRAIN)
/* The header of im_mem_alloc (size and tag, below): a multiple of the
 * grain keeps malloc's alignment for what follows it. */
#define MEM_HEADER 16

typedef struct mem_block { struct mem_block *next; } mem_block;

static struct {
    mem_block *head;
    size_t n;
} mem_class[MEM_CLASSES + 1];   /* [c] holds blocks of c * MEM_GRAIN bytes */

/* Under AddressSanitizer the cache stays on and cached blocks are
 * poisoned (all but their link), as is the rounding slack past the size
 * asked for: a use after im_mem_put, or an overrun into the slack, is
 * reported like a use after free (the shipped code path stays checkable). */
#ifdef MEM_SANITIZED
#include <sanitizer/asan_interface.h>
#define MEM_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MEM_POISON(p, n) ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The class of a small size: 1 for 0..16 bytes, 2 for 17..32, ... */
static size_t mem_class_of(size_t n) {
    return n == 0 ? 1 : (n + MEM_GRAIN - 1) / MEM_GRAIN;
}

size_t im_mem_usable(size_t n) {
    return n <= IM_MEM_SMALL ? mem_class_of(n) * MEM_GRAIN : n;
}

void *im_mem_get(size_t n) {
    if (n <= IM_MEM_SMALL) {
        size_t c = mem_class_of(n);
        mem_block *b = mem_class[c].head;
        if (b != NULL) {
            MEM_UNPOISON(b, sizeof *b);
            mem_class[c].head = b->next;
            mem_class[c].n--;
        } else {
            /* Allocated at the class's full size, so any n of the class
             * fits when the block comes back round. */
            b = malloc(c * MEM_GRAIN);
            if (b == NULL)
                return NULL;
        }
        MEM_UNPOISON(b, n);
        MEM_POISON((char *)b + n, c * MEM_GRAIN - n);
        return b;
    }
    return malloc(n);
}

void im_mem_put(void *p, size_t n) {
    if (p == NULL)
        return;
    if (n <= IM_MEM_SMALL) {
        size_t c = mem_class_of(n);
        if (mem_class[c].n < IM_MEM_KEEP) {
            mem_block *b = p;
            MEM_UNPOISON(b, sizeof *b);
            b->next = mem_class[c].head;
            mem_class[c].head = b;
            mem_class[c].n++;
            /* All but the link: LeakSanitizer follows no pointer kept in
             * poisoned memory, and would call the cache a leak. */
            MEM_POISON(b + 1, c * MEM_GRAIN - sizeof *b);
            return;
        }
        MEM_UNPOISON(p, c * MEM_GRAIN);   /* whole again for free() */
    }
    free(p);
}

void *im_mem_resize(void *p, size_t o, size_t n) {
    void *q;
    if (p == NULL)
        return im_mem_get(n);
    if (o > IM_MEM_SMALL && n > IM_MEM_SMALL)
        return realloc(p, n);   /* large to large: malloc's own business */
    if (o <= IM_MEM_SMALL && n <= IM_MEM_SMALL && mem_class_of(o) == mem_class_of(n)) {
        size_t full = mem_class_of(n) * MEM_GRAIN;
        MEM_UNPOISON(p, n);     /* the block already has room */
        MEM_POISON((char *)p + n, full - n);
        return p;
    }
    q = im_mem_get(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, o < n ? o : n);
    im_mem_put(p, o);
    return q;
}

/* The header: the size, then the size xor a constant. A block that did
 * not come from im_mem_alloc, a header overwritten by an underrun, or a
 * second free (the tag is cleared on the first) stops the process: going
 * on would hand one block to two owners. */
#define MEM_TAG 0x6d656d626c6b2121ULL

void *im_mem_alloc(size_t n) {
    unsigned char *p;
    uint64_t tag = (uint64_t)n ^ MEM_TAG;
    if (n > SIZE_MAX - MEM_HEADER)
        return NULL;
    p = im_mem_get(n + MEM_HEADER);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof n);
    memcpy(p + 8, &tag, sizeof tag);
    return p + MEM_HEADER;
}

void im_mem_free(void *p) {
    unsigned char *b;
    size_t n;
    uint64_t tag, none = 0;
    if (p == NULL)
        return;
    b = (unsigned char *)p - MEM_HEADER;
    memcpy(&n, b, sizeof n);
    memcpy(&tag, b + 8, sizeof tag);
    if (tag != ((uint64_t)n ^ MEM_TAG)) {
        fprintf(stderr, "ibkr-mcp: fatal: im_mem_free(%p): not a live block of im_mem_alloc\n", p);
        abort();
    }
    memcpy(b + 8, &none, sizeof none);
    im_mem_put(b, n + MEM_HEADER);
}

size_t im_mem_cached(void) {
    size_t n = 0;
    for (size_t c = 1; c <= MEM_CLASSES; c++)
        n += mem_class[c].n;
    return n;
}
