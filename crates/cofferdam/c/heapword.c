/* The state that Cofferdam's interposed malloc reads when foreign code calls
 * it (crates/cofferdam/src/heap/).
 *
 * It lives here, in C, because on the mpk backend Rust's statics and
 * thread-locals carry the protection key P (crates/cofferdam/src/statics.rs),
 * and foreign code runs without P's rights: a malloc called by foreign code
 * that read a Rust static or a Rust thread_local! would fault. The C
 * objects' globals and thread-locals stay outside the tagged pages (the
 * layout script gathers only `*.rcgu.o` sections).
 *
 * Foreign code can write all of this. What it then changes is which foreign
 * memory the allocator, running without P's rights, works on: trusted code
 * decides from its own (tagged) copies, never from these. */
#include <stdint.h>

/* The base of the heap that foreign code running on this thread allocates
 * from, or 0 outside gate calls. */
static __thread uintptr_t current;

/* The heap slots: where they start, how many there are, and each one's
 * state (0 free, 1 live, 2 quarantined). */
uintptr_t cofferdam_heap_base;
uintptr_t cofferdam_heap_slots;
uint8_t cofferdam_heap_states[1024];

uintptr_t cofferdam_heap_current(void) {
    return current;
}

/* Sets the word, returning the previous value. */
uintptr_t cofferdam_heap_swap(uintptr_t v) {
    uintptr_t old = current;
    current = v;
    return old;
}

/* This thread's token for heap locks: the address of its word (never 0,
 * distinct per live thread). */
uintptr_t cofferdam_heap_token(void) {
    return (uintptr_t)&current;
}

/* glibc's malloc_usable_size (looked up with dlsym by trusted code), for
 * foreign callers of Cofferdam's. */
uintptr_t cofferdam_libc_usable;
