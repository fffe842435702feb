/* A shared library that makes system calls from its own code (a `syscall`
 * instruction in its text, not libc's), loaded after the syscall guard is
 * in place: the guard's policy must cover it as it covers the code that was
 * there before. */
#include <stdint.h>

long cd_lib_raw_syscall(long nr, long a0, long a1, long a2, long a3) {
    long ret;
    register long r10 __asm__("r10") = a3;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

/* Reads n bytes at p into out (to see whether a retag let it through). */
void cd_lib_copy(const volatile uint8_t *p, volatile uint8_t *out, long n) {
    for (long i = 0; i < n; i++) out[i] = p[i];
}
