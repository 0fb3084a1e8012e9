/* mem.h: process memory. The heap is faulted in at start-up in one call
 * instead of page by page, and small blocks are kept for reuse. */
#ifndef IM_MEM_H
#define IM_MEM_H

#include <stddef.h>

/* How much heap start-up gets ready in advance: a little more than the
 * working set of a server with the shipped tools and policies (about
 * 800 KiB of heap after initialize). */
#define IM_MEM_PREFAULT (1024 * 1024)

/* Grows the malloc heap by bytes at once and asks the kernel to back it
 * now (MADV_POPULATE_WRITE, Linux 5.14), so the allocations of start-up
 * do not each take a page fault. Also fixes glibc's mmap and trim
 * thresholds high (1 and 2 MiB), so large transient blocks are reused
 * from the heap rather than mapped and faulted in anew each time. Call
 * once, before anything else allocates much. Returns 0, or -1 when it did
 * not prefault (another C library, a sanitizer's allocator, an older
 * kernel): only speed depends on it. */
int im_mem_prefault(size_t bytes);

/* ---- small blocks ----
 * A call builds and drops some hundred small blocks (cJSON nodes and
 * strings, Lua tables and strings). glibc keeps only 7 free blocks of a
 * size at hand; the rest go the long way through its bins, which was
 * about 15% of a get_quote. These keep up to IM_MEM_KEEP blocks of each
 * 16-byte class up to IM_MEM_SMALL bytes, LIFO, for the event loop's
 * thread only (at most 2048 x 16 x (16 + 32 + ... + 256) bytes, 4.25 MiB,
 * and only ever what a burst freed). Larger blocks go straight to malloc
 * and free. Under AddressSanitizer cached blocks are poisoned. */
#define IM_MEM_SMALL 256
#define IM_MEM_KEEP 2048

/* A block of n bytes (n > 0) that im_mem_put(p, n) or im_mem_resize gives
 * back; NULL when out of memory. */
void *im_mem_get(size_t n);
/* Gives back p (NULL is allowed), which was asked for with size n. */
void im_mem_put(void *p, size_t n);
/* p (of size o, or NULL) resized to n > 0 bytes, contents kept up to the
 * smaller size; NULL (p untouched) when out of memory. */
void *im_mem_resize(void *p, size_t o, size_t n);

/* malloc and free for code that does not know the sizes it frees (cJSON's
 * hooks): a 16-byte header keeps the size. */
void *im_mem_alloc(size_t n);
void im_mem_free(void *p);

/* The bytes a block asked for with size n really takes: its class's size
 * for a small one (memory limits count this, not n). */
size_t im_mem_usable(size_t n);

/* Blocks cached now, over all classes (for tests). */
size_t im_mem_cached(void);

#endif
