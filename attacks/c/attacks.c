/*
 * Foreign code that attacks the Rust side of an FFI boundary.
 *
 * Each function is what a buggy or compromised C library does with what Rust
 * hands it: read or write past a buffer, keep a pointer after Rust freed the
 * object, free memory it does not own, hand out recycled memory. The same code
 * runs in both the unprotected and the protected run; only what Rust passes
 * (Rust memory or foreign memory) and how it calls (bare or through the gate)
 * differ. Addresses that an attacker would learn through an information leak
 * are passed in as "leak" parameters.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MARKER "COFFERDAM-SECRET:"
#define MARKER_LEN (sizeof(MARKER) - 1)

/* Byte loops rather than memcpy/memset: every access is a plain load or
 * store at the address named, so a fault reports that address. */
static void copy_bytes(volatile uint8_t *dst, const volatile uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}
static void fill_bytes(volatile uint8_t *dst, uint8_t v, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = v;
}
static long find_marker(const volatile uint8_t *p, size_t n) {
    for (size_t i = 0; i + MARKER_LEN <= n; i++) {
        size_t j = 0;
        while (j < MARKER_LEN && p[i + j] == (uint8_t)MARKER[j]) j++;
        if (j == MARKER_LEN) return (long)i;
    }
    return -1;
}

/*
 * heap-overflow-read: told that `buf` holds `len` bytes, reads `len + extra`
 * looking for a secret; failing that, reads the secret at the leaked address.
 * Copies what it found into `out`. Returns 1 (found by overflow), 2 (found
 * through the leaked pointer) or 0.
 */
int cd_overread(const uint8_t *buf, size_t len, size_t extra, const uint8_t *leak,
                uint8_t *out, size_t out_len) {
    long at = find_marker(buf, len + extra);
    if (at >= 0) {
        size_t avail = len + extra - (size_t)at;
        copy_bytes(out, buf + at, avail < out_len ? avail : out_len);
        return 1;
    }
    if (leak != NULL) {
        copy_bytes(out, leak, out_len);
        return find_marker(out, out_len) >= 0 ? 2 : 0;
    }
    return 0;
}

/*
 * heap-overflow-write: writes `len + extra` bytes into a `len`-byte buffer,
 * then `leak_len` bytes at the leaked address of the object next to it.
 */
void cd_overwrite(uint8_t *buf, size_t len, size_t extra, uint8_t *leak, size_t leak_len) {
    fill_bytes(buf, 'A', len + extra);
    if (leak != NULL) fill_bytes(leak, 'B', leak_len);
}

/* use-after-free: keep a pointer to Rust's object ... */
static uint8_t *retained;
void cd_retain(uint8_t *p) { retained = p; }
/* ... and write through it after Rust freed it. */
void cd_use_stale(size_t n) {
    if (retained != NULL) fill_bytes(retained, 'X', n);
}

/* double-free: free() memory that Rust owns. */
void cd_free(void *p) { free(p); }

/*
 * uninitialized-read: malloc a buffer and look at what it held before.
 * Copies up to out_len bytes from the marker (if any) into out; returns 1 if
 * the marker was there.
 */
int cd_malloc_scan(size_t n, uint8_t *out, size_t out_len) {
    uint8_t *p = malloc(n);
    if (p == NULL) return -1;
    long at = find_marker(p, n);
    if (at >= 0) {
        size_t avail = n - (size_t)at;
        copy_bytes(out, p + at, avail < out_len ? avail : out_len);
    }
    free(p);
    return at >= 0 ? 1 : 0;
}

/* stack-smash (leaked stack address): write over a Rust stack variable. */
void cd_stack_write(uint8_t *rust_stack_addr, size_t n) { fill_bytes(rust_stack_addr, 'S', n); }

/* invalid-return: return 2 where Rust declared `bool`, ... */
uint8_t cd_bad_bool(void) { return 2; }
/* ... a discriminant Rust's enum does not have (it has 0, 1 and 5), ... */
int cd_bad_enum(void) { return 7; }
/* ... and hand back, as if it were C's, a pointer into the Rust heap. */
void *cd_echo_ptr(void *p) { return p; }

/* Ten arguments, four of them on the stack: a weighted sum shows their order. */
long cd_sum10(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j) {
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j;
}

/* A trivial function for the gate's benchmarks. */
int cd_noop(int x) { return x + 1; }

/* A foreign fault of the foreign code's own: write to a null pointer. */
void cd_null_write(void) { *(volatile int *)0 = 1; }

/* ───────────── rights-escalation and syscall-escape (issue 6) ───────────── */

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Foreign code grants itself every right: WRPKRU with eax = 0. Only where
 * the OS enabled protection keys (elsewhere WRPKRU is #UD). */
static void grant_all(int have_pku) {
    if (have_pku)
        __asm__ volatile("xor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%eax, %%eax\n\twrpkru"
                         ::: "eax", "ecx", "edx", "memory");
}

/* (b) A linked-in function with its own WRPKRU, then the secret. */
int cd_own_wrpkru(const uint8_t *secret, uint8_t *out, size_t n, int have_pku) {
    grant_all(have_pku);
    copy_bytes(out, secret, n);
    return 1;
}

/* (c) Jump onto the gate's WRPKRU with eax = 0 (all rights), as if the gate
 * had meant it. Does not return where the gate's check works. */
int cd_gate_jump(void *wrpkru, const uint8_t *secret, uint8_t *out, size_t n, int have_pku) {
    if (have_pku && wrpkru)
        __asm__ volatile("xor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%eax, %%eax\n\tjmp *%0"
                         :: "r"(wrpkru) : "eax", "ecx", "edx", "memory");
    copy_bytes(out, secret, n);
    return 1;
}

/* pkey_mprotect(page, RW, key 0): retag a Rust heap page, then read it. */
long cd_retag_and_read(void *page, size_t len, const uint8_t *secret, uint8_t *out, size_t n) {
    long r = syscall(SYS_pkey_mprotect, page, len, PROT_READ | PROT_WRITE, 0);
    copy_bytes(out, secret, n);
    return r;
}

/* mprotect(page, PROT_READ) on a Rust heap page. */
long cd_mprotect_page(void *page, size_t len) {
    return syscall(SYS_mprotect, page, len, PROT_READ);
}

/* madvise(MADV_DONTNEED) on a Rust heap page: its contents become zero. */
long cd_zap_page(void *page, size_t len) {
    return syscall(SYS_madvise, page, len, MADV_DONTNEED);
}

/* An anonymous RWX page with a WRPKRU in it, called; then the secret. */
long cd_rwx_wrpkru(const uint8_t *secret, uint8_t *out, size_t n, int have_pku) {
    static const uint8_t code[] = {0x31, 0xc9, 0x31, 0xd2, 0x31, 0xc0, 0x0f, 0x01, 0xef, 0xc3};
    void *p = (void *)syscall(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    copy_bytes(p, code, sizeof code);
    if (have_pku)
        ((void (*)(void))p)();
    copy_bytes(out, secret, n);
    return 1;
}
