/*
 * Foreign code that goes after Rust's statics and thread-locals (the
 * static-hijack class), and registers an exit handler from inside a gate
 * (rights-escalation). Small helpers for the statics tests too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* (a) The function C wants Rust to call with Rust's rights: copies what it
 * is handed (a Rust secret) into memory C can read later. */
static uint8_t *stolen_out;
static int cd_evil_dispatch(const uint8_t *secret, uint8_t *out, size_t n) {
    (void)out;
    if (stolen_out) memcpy(stolen_out, secret, n);
    return 0x0BAD;
}

/* (a) Overwrites a dispatch pointer (a Rust static) with cd_evil_dispatch,
 * and remembers where to put what it steals. */
void cd_hijack_dispatch(void **slot, uint8_t *steal_into) {
    stolen_out = steal_into;
    *(void *volatile *)slot = (void *)cd_evil_dispatch;
}

/* (b) Swaps a pointer-sized static (a wrapper's compartment) for another. */
void cd_swap_word(uint64_t *slot, uint64_t value) { *(volatile uint64_t *)slot = value; }

/* (c) A C global with an out-of-bounds index bug: `index` is the caller's
 * (in a real library: input-derived). The attacker picks the index that
 * lands on a Rust static next to C's globals. */
uint8_t cd_global_buf[64] = {1};
void cd_global_write(ptrdiff_t index, const uint8_t *bytes, size_t n) {
    volatile uint8_t *p = cd_global_buf + index;
    for (size_t i = 0; i < n; i++) p[i] = bytes[i];
}
uintptr_t cd_global_buf_addr(void) { return (uintptr_t)cd_global_buf; }

/* Helpers: a word in C's memory, for stand-ins that must not read Rust's
 * statics (they run without P). */
static uintptr_t cd_word;
void cd_set_word(uintptr_t w) { cd_word = w; }
uintptr_t cd_get_word(void) { return cd_word; }

/* rights-escalation (exit handler): registered from inside a gate; at exit
 * it copies the Rust secret it was told about into a pipe. */
static const uint8_t *exit_secret;
static size_t exit_len;
static int exit_fd = -1;
static void cd_exit_handler(void) {
    if (exit_fd >= 0 && exit_secret) {
        ssize_t r = write(exit_fd, exit_secret, exit_len);
        (void)r;
    }
}
int cd_register_exit_handler(const uint8_t *secret, size_t n, int fd) {
    exit_secret = secret;
    exit_len = n;
    exit_fd = fd;
    return atexit(cd_exit_handler);
}

/* Registrations the interposers refuse from foreign code (statics tests):
 * returns what glibc's (or Cofferdam's) function returned. */
#include <pthread.h>
static void cd_key_dtor(void *p) { (void)p; }
static void cd_fork_handler(void) {}
int cd_key_create(int with_dtor) {
    pthread_key_t k;
    int r = pthread_key_create(&k, with_dtor ? cd_key_dtor : NULL);
    if (r == 0) pthread_key_delete(k);
    return r;
}
int cd_atfork(void) { return pthread_atfork(cd_fork_handler, 0, 0); }
