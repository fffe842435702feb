/*
 * mpk-probe: proves that Intel MPK (protection keys) works on this machine.
 * Built on the host by `scripts/mpk-vm --check` and run inside the VM.
 *
 *  1. /proc/cpuinfo has the `pku` (CPU) and `ospke` (enabled by the OS) flags;
 *  2. pkey_alloc() hands out a key (and clears its PKRU bits);
 *     pkey_mprotect() tags a page with it; the page is readable;
 *  3. with access disabled for that key by WRPKRU (PKEY_DISABLE_ACCESS),
 *     reading the page raises SIGSEGV
 *     with si_code == SEGV_PKUERR (4) and si_pkey == the key; the handler
 *     records RDPKRU at its entry (the kernel's default PKRU for signal
 *     handlers);
 *  4. after granting the rights back with WRPKRU the read succeeds;
 *  5. with write disabled, reads work and a write faults with SEGV_PKUERR.
 *
 * Prints one line per step and a one-line summary; exits 0 only if every
 * step holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef SEGV_PKUERR
#define SEGV_PKUERR 4
#endif
#ifndef PKEY_DISABLE_ACCESS
#define PKEY_DISABLE_ACCESS 0x1
#endif
#ifndef PKEY_DISABLE_WRITE
#define PKEY_DISABLE_WRITE 0x2
#endif

/* RDPKRU / WRPKRU as raw opcodes (no -mpku needed). ECX (and EDX) must be 0. */
static inline uint32_t rdpkru(void)
{
    uint32_t eax, edx;
    __asm__ volatile(".byte 0x0f,0x01,0xee" : "=a"(eax), "=d"(edx) : "c"(0));
    return eax;
}

static inline void wrpkru(uint32_t pkru)
{
    __asm__ volatile(".byte 0x0f,0x01,0xef" : : "a"(pkru), "c"(0), "d"(0) : "memory");
}

/* Filled in by the SIGSEGV handler. */
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_seen;
static volatile int fault_code, fault_pkey;
static volatile uint32_t fault_pkru;
static void *volatile fault_addr;

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    fault_pkru = rdpkru(); /* first thing: PKRU as the kernel set it up */
    fault_code = si->si_code;
    fault_pkey = (int)si->si_pkey;
    fault_addr = si->si_addr;
    fault_seen = 1;
    /* Leave without sigreturn, so PKRU stays at the handler's value. */
    siglongjmp(fault_jmp, 1);
}

static int failures;

static void check(int ok, const char *what)
{
    printf("mpk-probe: [%s] %s\n", ok ? " ok " : "FAIL", what);
    if (!ok)
        failures++;
}

/* Does the first "flags" line of /proc/cpuinfo contain the word `flag`? */
static int cpu_has_flag(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        for (char *tok = strtok(strchr(line, ':') + 1, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
            if (strcmp(tok, flag) == 0)
                found = 1;
        break;
    }
    fclose(f);
    return found;
}

/* Try to read (or write) *p; returns 1 if it faulted (handler recorded it). */
static int access_faults(volatile uint64_t *p, int write, uint64_t *value)
{
    fault_seen = 0;
    if (sigsetjmp(fault_jmp, 1) == 0) {
        if (write)
            *p = 0x1111111111111111ULL;
        else
            *value = *p;
        return 0;
    }
    return 1;
}

int main(void)
{
    const uint64_t magic = 0xC0FFEEDA4D00C0DEULL;
    char summary[512];
    uint64_t v = 0;
    int pku = cpu_has_flag("pku"), ospke = cpu_has_flag("ospke");

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("mpk-probe: cpuinfo flags: pku=%d ospke=%d\n", pku, ospke);
    check(pku, "CPU advertises pku");
    check(ospke, "kernel enabled it (ospke, CR4.PKE)");
    if (!pku || !ospke) {
        printf("mpk-probe: FAIL: no MPK (RDPKRU would raise #UD); stopping\n");
        return 1;
    }

    uint32_t pkru_start = rdpkru();
    printf("mpk-probe: PKRU at process start = 0x%08x\n", pkru_start);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) {
        perror("sigaction");
        return 1;
    }

    long pagesz = sysconf(_SC_PAGESIZE);
    volatile uint64_t *page = mmap(NULL, (size_t)pagesz, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    *page = magic;

    /* 2. allocate a key (initial rights: full access), tag the page. */
    int pkey = pkey_alloc(0, 0);
    if (pkey < 0) {
        printf("mpk-probe: FAIL: pkey_alloc: %s\n", strerror(errno));
        return 1;
    }
    check(1, "pkey_alloc(0, 0) succeeded");
    uint32_t pkru_alloc = rdpkru();
    printf("mpk-probe: pkey=%d, PKRU after pkey_alloc = 0x%08x\n", pkey, pkru_alloc);
    check((pkru_alloc & (3u << (2 * pkey))) == 0, "pkey_alloc cleared the key's PKRU bits");

    if (pkey_mprotect((void *)page, (size_t)pagesz, PROT_READ | PROT_WRITE, pkey) != 0) {
        printf("mpk-probe: FAIL: pkey_mprotect: %s\n", strerror(errno));
        return 1;
    }
    check(1, "pkey_mprotect(page, RW, pkey) succeeded");
    int early = access_faults(page, 0, &v);
    check(!early && v == magic, "with the key's access allowed the read works");

    /* Deny access with WRPKRU: PKEY_DISABLE_ACCESS for our key only, every
     * other key open, so that the PKRU seen in the signal handler can be
     * told apart from the one at the fault. */
    const uint32_t deny = PKEY_DISABLE_ACCESS << (2 * pkey);
    wrpkru(deny);
    uint32_t pkru_denied = rdpkru();
    printf("mpk-probe: PKRU after WRPKRU deny = 0x%08x\n", pkru_denied);
    check(pkru_denied == deny, "RDPKRU reads back the WRPKRU value");

    /* 3. the read must fault with SEGV_PKUERR. */
    int faulted = access_faults(page, 0, &v);
    check(faulted, "read of the page with access disabled raised SIGSEGV");
    if (faulted) {
        printf("mpk-probe: si_code=%d si_pkey=%d si_addr=%p (page %p)\n", fault_code, fault_pkey,
               fault_addr, (void *)page);
        printf("mpk-probe: PKRU at signal-handler entry = 0x%08x\n", fault_pkru);
        check(fault_code == SEGV_PKUERR, "si_code == SEGV_PKUERR (4)");
        check(fault_pkey == pkey, "si_pkey == the page's key");
        check(fault_addr == (void *)page, "si_addr == the page");
    }
    uint32_t pkru_after_jmp = rdpkru();
    printf("mpk-probe: PKRU after siglongjmp out of the handler = 0x%08x\n", pkru_after_jmp);

    /* 4. grant access with WRPKRU; the read must now work. */
    wrpkru(pkru_after_jmp & ~(3u << (2 * pkey)));
    uint32_t pkru_granted = rdpkru();
    printf("mpk-probe: PKRU after WRPKRU grant = 0x%08x\n", pkru_granted);
    int refaulted = access_faults(page, 0, &v);
    int read_ok = !refaulted && v == magic;
    check(read_ok, "after WRPKRU grant the read works and sees the data");

    /* 5. write-disable: read ok, write faults. */
    wrpkru(pkru_granted | (PKEY_DISABLE_WRITE << (2 * pkey)));
    v = 0;
    int rd_wd = access_faults(page, 0, &v);
    int wr_wd = access_faults(page, 1, NULL);
    check(!rd_wd && v == magic, "with write disabled the read works");
    check(wr_wd && fault_code == SEGV_PKUERR && fault_pkey == pkey,
          "with write disabled a write faults with SEGV_PKUERR");
    wrpkru(pkru_granted);

    check(pkey_free(pkey) == 0, "pkey_free");

    snprintf(summary, sizeof summary,
             "pku=%d ospke=%d pkey=%d fault=%s si_code=%d si_pkey=%d "
             "pkru_start=0x%08x pkru_handler=0x%08x read_after_wrpkru=%s",
             pku, ospke, pkey, faulted ? "yes" : "no", faulted ? fault_code : -1,
             faulted ? fault_pkey : -1, pkru_start, faulted ? fault_pkru : 0,
             read_ok ? "ok" : "FAIL");
    printf("mpk-probe: %s: %s\n", failures ? "FAIL" : "PASS", summary);
    return failures ? 1 : 0;
}
