/* heap-metadata-smash: C overruns one of its own malloc'ed buffers across
 * its heap's metadata (a linear overflow, the commonest heap bug), then
 * keeps using the heap. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

/* Mallocs a 32-byte buffer and writes `n` bytes of 0x41 from its start:
 * everything after it in the heap (other blocks, the allocator's headers
 * and free lists) is overwritten. Returns the buffer (never freed). */
void *cd_heap_smash(size_t n) {
    char *p = malloc(32);
    if (p == NULL) {
        return NULL;
    }
    memset(p, 0x41, n);
    return p;
}

/* Allocates and frees assorted blocks `rounds` times (malloc, calloc,
 * realloc, strdup, posix_memalign): the allocator walks its metadata.
 * Returns how many rounds got every block. */
int cd_heap_churn(int rounds) {
    int ok = 0;
    for (int i = 0; i < rounds; i++) {
        char *a = malloc(24 + (size_t)i * 8);
        char *b = calloc(1, 4000);
        char *c = strdup("cofferdam");
        void *d = NULL;
        int aligned = posix_memalign(&d, 64, 200) == 0;
        char *e = realloc(a, 5000);
        if (e != NULL) {
            a = e;
        }
        if (a != NULL && b != NULL && c != NULL && aligned && e != NULL) {
            a[0] = b[0];
            ok++;
        }
        free(a);
        free(b);
        free(c);
        free(d);
    }
    return ok;
}

/* Returns malloc(n) (for the routing tests). */
void *cd_malloc(size_t n) {
    return malloc(n);
}

/* Returns strdup(s). */
char *cd_strdup(const char *s) {
    return strdup(s);
}

/* Opens /dev/null with stdio and never closes it: glibc links the FILE, which
 * lives in the caller's heap, into its list of open streams and walks that
 * list at exit. Returns 1 if the stream was opened. */
int cd_heap_fopen(void) {
    FILE *f = fopen("/dev/null", "w");
    if (f == NULL) {
        return 0;
    }
    fputs("cofferdam", f);
    return 1;
}
