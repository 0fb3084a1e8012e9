/* mem.h: process memory. The heap is faulted in at start-up in one call
 * instead of page by page. */
#ifndef IM_MEM_H
#define IM_MEM_H

#include <stddef.h>

/* How much heap start-up gets ready in advance: a little more than the
 * working set of a server with the shipped tools and policies (about
 * 800 KiB of heap after initialize). */
#define IM_MEM_PREFAULT (1024 * 1024)

/* Grows the malloc heap by bytes at once and asks the kernel to back it
 * now (MADV_POPULATE_WRITE, Linux 5.14), so the allocations of start-up
 * do not each take a page fault. Also keeps that much heap when memory is
 * given back, so a later burst does not fault it in again. Call once,
 * before anything else allocates much. Returns 0, or -1 when it did
 * nothing (another C library, a sanitizer's allocator, an older kernel):
 * only speed depends on it. */
int im_mem_prefault(size_t bytes);

#endif
