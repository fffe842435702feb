/*
 * Foreign code that goes after Rust's stacks and callbacks, and small helpers
 * the stack and callback tests use.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

extern char **environ;

/* stack-smash (frame overrun): scan upward from its own frame, over the
 * caller's frames, for the 8-byte value `masked ^ CD_MASK` (a Rust local;
 * passed masked so that the argument's own copies do not match), and
 * overwrite every copy. Returns how many it overwrote. */
#define CD_MASK 0xA5A5A5A5A5A5A5A5ull
__attribute__((noinline)) int cd_smash_up(uint64_t masked, size_t max) {
    volatile uint64_t here = 0;
    volatile uint64_t *p = &here;
    uint64_t canary = masked ^ CD_MASK;
    int hits = 0;
    size_t n = max / 8;
    /* On the main thread's stack, stop at `environ` (mapped, and above every
     * frame) rather than read past the top of the stack. */
    uintptr_t top = (uintptr_t)environ;
    if (top > (uintptr_t)p && (top - (uintptr_t)p) / 8 < n) n = (top - (uintptr_t)p) / 8;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == canary) {
            p[i] = 0x5858585858585858ull; /* "XXXXXXXX" */
            hits++;
        }
    }
    return hits;
}

/* stack-smash (through environ): the environment array lies at the top of
 * the main thread's stack; scan downward from it, over Rust's frames, for
 * `canary` and overwrite it. */
int cd_environ_hunt(uint64_t masked, size_t max) {
    volatile uint64_t *p = (volatile uint64_t *)environ;
    uint64_t canary = masked ^ CD_MASK;
    int hits = 0;
    for (size_t i = 0; i < max / 8; i++) {
        if (p[-(long)i] == canary) {
            p[-(long)i] = 0x5858585858585858ull;
            hits++;
        }
    }
    return hits;
}

/* Where this function's frame is: which stack foreign code runs on. */
__attribute__((noinline)) uintptr_t cd_frame_address(void) {
    return (uintptr_t)__builtin_frame_address(0);
}

/* Writes `v` at address `p` (a leaked Rust stack address). */
void cd_write_u64(uint64_t *p, uint64_t v) { *(volatile uint64_t *)p = v; }

/* Mixed integer and floating-point arguments and a double return. */
double cd_mix(int a, double x, long b, float y, double z) { return a * x + (double)b * y - z; }
float cd_halve(float x) { return x / 2.0f; }

/* Sets MXCSR's rounding control to "toward zero" and returns the old MXCSR,
 * as a foreign library that breaks the ABI would. */
unsigned cd_clobber_mxcsr(void) {
    unsigned old, v;
    __asm__ volatile("stmxcsr %0" : "=m"(old));
    v = old | (3u << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
    return old;
}

/* Returns with the direction flag set, as a foreign function that breaks
 * the ABI would (Rust's string copies would then run backwards). */
void cd_set_df(void) { __asm__ volatile("std" ::: "memory"); }

/* Sets the x87 control word's rounding control to "toward zero" and its
 * precision control to single, and returns the old control word. */
unsigned cd_clobber_fpucw(void) {
    unsigned short old, v;
    __asm__ volatile("fnstcw %0" : "=m"(old));
    v = (unsigned short)((old & ~0x0300u) | 0x0c00u);
    __asm__ volatile("fldcw %0" : : "m"(v));
    return old;
}

/* ---- callbacks ---- */
typedef int (*cd_cb2)(void *, void *);
static cd_cb2 stored_cb;

/* Changes MXCSR (rounding toward zero) and the x87 control word (toward
 * zero, single precision), calls cb(a, b), and returns MXCSR in the low 32
 * bits and the x87 control word in the high 32 as C sees them after the
 * callback: the callback must neither see C's words nor take them away. */
unsigned long long cd_clobber_then_cb(cd_cb2 cb, void *a, void *b) {
    unsigned m, m2;
    unsigned short w, w2;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    m |= 3u << 13;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
    __asm__ volatile("fnstcw %0" : "=m"(w));
    w = (unsigned short)((w & ~0x0300u) | 0x0c00u);
    __asm__ volatile("fldcw %0" : : "m"(w));
    cb(a, b);
    __asm__ volatile("stmxcsr %0" : "=m"(m2));
    __asm__ volatile("fnstcw %0" : "=m"(w2));
    return (unsigned long long)m2 | ((unsigned long long)w2 << 32);
}

/* Calls cb(a, b) once, and keeps it for later. */
int cd_cb_call(cd_cb2 cb, void *a, void *b) {
    stored_cb = cb;
    return cb(a, b);
}
/* Calls the callback kept by an earlier call (after that call returned). */
int cd_cb_call_stored(void *a, void *b) { return stored_cb ? stored_cb(a, b) : -12345; }

struct cb_thread_args {
    cd_cb2 cb;
    void *a, *b;
    int result;
};
static void *cb_thread(void *arg) {
    struct cb_thread_args *t = arg;
    t->result = t->cb(t->a, t->b);
    return NULL;
}
/* Calls cb(a, b) from a thread of its own, while Rust's call waits. */
int cd_cb_call_in_thread(cd_cb2 cb, void *a, void *b) {
    struct cb_thread_args t = {cb, a, b, -12345};
    pthread_t th;
    if (pthread_create(&th, NULL, cb_thread, &t) != 0) return -1;
    pthread_join(th, NULL);
    return t.result;
}

/* Calls cb n times, summing the results (a loop in C over a Rust callback). */
long cd_cb_sum(cd_cb2 cb, void *a, void *b, int n) {
    long s = 0;
    for (int i = 0; i < n; i++) s += cb(a, b);
    return s;
}

typedef double (*cd_cbd)(double, int);
/* A callback with a floating-point argument and return. */
double cd_cb_double(cd_cbd cb, double x, int n) { return cb(x, n) + 1.0; }

/* A thread of foreign code's own, started and joined inside one call: its
 * stack may be one glibc cached from an exited Rust thread. Returns 0 if it
 * could use its stack. */
static void *touch_stack(void *arg) {
    volatile char buf[8192];
    for (size_t i = 0; i < sizeof buf; i += 64) buf[i] = (char)i;
    *(int *)arg = buf[64] == 64 ? 0 : 1;
    return NULL;
}
int cd_run_thread(void) {
    int r = -1;
    pthread_t th;
    if (pthread_create(&th, NULL, touch_stack, &r) != 0) return -2;
    pthread_join(th, NULL);
    return r;
}
