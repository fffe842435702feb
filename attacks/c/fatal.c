/*
 * Foreign code that ends in a fatal signal: each of these would end an
 * ordinary program. Called through the gate, each must become Err(Fault) of
 * its own kind, and the program carries on.
 */
#undef NDEBUG
#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* SIGFPE: an integer division by zero. */
int cd_div_zero(int x) {
    volatile int zero = 0;
    return x / zero;
}

/* SIGILL: ud2. */
void cd_ud2(void) { __asm__ volatile("ud2"); }

/* SIGTRAP: int3. */
void cd_int3(void) { __asm__ volatile("int3"); }

/* SIGABRT: abort(), and a failed assert (which prints, then aborts). */
void cd_abort(void) { abort(); }
int cd_assert_positive(int x) {
    assert(x > 0);
    return x;
}

/* A fault signal sent, not raised by the CPU (si_code <= 0). */
void cd_raise_segv(void) { raise(SIGSEGV); }

/* Returns with its stack pointer 8 bytes lower than it should be: the
 * return address is pushed twice, `ret` pops one. */
__asm__(".globl cd_bad_sp\n"
        ".type cd_bad_sp,@function\n"
        "cd_bad_sp:\n"
        "    pushq (%rsp)\n"
        "    ret\n"
        ".size cd_bad_sp, .-cd_bad_sp\n");

/* The library ends the whole program: exit() runs the exit handlers, then
 * exit_group; _exit() goes straight to exit_group. */
void cd_exit(int code) { exit(code); }
void cd__exit(int code) { _exit(code); }
