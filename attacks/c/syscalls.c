/* Attacks through syscalls and kernel features (issue 10): the kernel as a
 * deputy that copies or remaps memory for foreign code, signal frames on a
 * stack of foreign code's choosing, a thread sharing the caller's TLS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static long err(long r) { return r < 0 ? -errno : r; }

/* Moves the page(s) at target away with mremap(MREMAP_FIXED) and maps a
 * page of its own there, filled with `fill`: whoever reads target now reads
 * foreign code's bytes. Returns 0, or -errno of the step that failed. */
long cd_remap_replace(void *target, size_t len, long fill) {
    void *away = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (away == MAP_FAILED) return -errno;
    void *moved = (void *)syscall(SYS_mremap, target, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, away);
    if (moved == MAP_FAILED) return -errno;
    void *mine = (void *)syscall(SYS_mmap, target, len, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (mine == MAP_FAILED) return -errno;
    memset(mine, (int)fill, len);
    return 0;
}

/* process_vm_readv on this very process: the kernel copies `n` bytes at
 * `remote` into `out` (a remote access: protection keys are not checked). */
long cd_vm_read(const void *remote, void *out, size_t n) {
    struct iovec l = {out, n}, r = {(void *)remote, n};
    return err(syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0));
}

/* Writes `n` bytes at `target` through /proc/self/mem. */
long cd_procmem_write(void *target, const void *data, size_t n) {
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/mem", O_RDWR);
    if (fd < 0) return -errno;
    long r = err(pwrite(fd, data, n, (off_t)(uintptr_t)target));
    close(fd);
    return r;
}

static volatile int altstack_hits;
static void on_usr2(int sig) { (void)sig; altstack_hits++; }

/* Points the alternate signal stack at `target` and signals itself: the
 * kernel writes the signal frame (registers, the xmm state) there. */
long cd_altstack_onto(void *target, size_t len) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_ONSTACK;
    if (sigaction(SIGUSR2, &sa, &old) != 0) return -errno;
    stack_t ss = {target, 0, len}, prev;
    if (syscall(SYS_sigaltstack, &ss, &prev) != 0) {
        long e = -errno;
        sigaction(SIGUSR2, &old, NULL);
        return e;
    }
    raise(SIGUSR2);
    syscall(SYS_sigaltstack, &prev, NULL);
    sigaction(SIGUSR2, &old, NULL);
    return altstack_hits;
}

typedef int (*cd_cb2)(void *, void *);
struct clone_args_c {
    cd_cb2 cb;
    void *a, *b;
    volatile int result;
    volatile int done;
};

static int clone_child(void *p) {
    struct clone_args_c *c = p;
    c->result = c->cb(c->a, c->b);
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return 0;
}

/* A thread made with a raw clone() without CLONE_SETTLS: it shares the
 * caller's FS base (so its TLS and thread pointer), and calls `cb`.
 * Returns the callback's result, or -errno if clone failed. */
int cd_clone_call_cb(cd_cb2 cb, void *a, void *b) {
    static char stack[256 * 1024] __attribute__((aligned(16)));
    struct clone_args_c c = {cb, a, b, -12345, 0};
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    int tid = clone(clone_child, stack + sizeof stack, flags, &c);
    if (tid < 0) return -errno;
    while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE)) sched_yield();
    return c.result;
}

/* One raw syscall with six arguments read from `args` (a foreign buffer):
 * the result, or -errno. */
long cd_syscall(long nr, const long *args) {
    return err(syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]));
}

/* A thread made with clone(CLONE_SETTLS) whose TLS is the caller's own
 * (the FS base copied from the caller): to the gate's FS-base check it is
 * the caller. It calls `cb` while the caller waits in C. Returns the
 * callback's result, or -errno if clone failed. */
int cd_clone_tls_call_cb(cd_cb2 cb, void *a, void *b) {
    static char stack[256 * 1024] __attribute__((aligned(16)));
    struct clone_args_c c = {cb, a, b, -12345, 0};
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                CLONE_SETTLS;
    int tid = clone(clone_child, stack + sizeof stack, flags, &c, NULL, __builtin_thread_pointer(),
                    NULL);
    if (tid < 0) return -errno;
    while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE)) sched_yield();
    return c.result;
}

/* An ordinary thread of the library's own (pthread_create gives it a TLS
 * of its own), started and joined inside the call: 0, or the error. */
static void *cd_thread_noop(void *p) { return p; }
int cd_pthread_roundtrip(void) {
    pthread_t t;
    int r = pthread_create(&t, NULL, cd_thread_noop, NULL);
    if (r != 0) return r;
    return pthread_join(t, NULL);
}

/* Calls `cb` on the calling thread. */
int cd_call_cb_here(cd_cb2 cb, void *a, void *b) { return cb(a, b); }

/* rseq (issue 10, 4). glibc registers an rseq area in each thread's TLS,
 * which foreign code can write: a critical section descriptor there that
 * covers Rust code makes the kernel send the thread, at its next preemption
 * or signal inside that range, to an abort handler of C's choosing, with
 * the interrupted code's PKRU. No syscall needed. */
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

struct cd_rseq_cs {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32)));

struct cd_rseq_area {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, pad[3];
} __attribute__((aligned(32)));

static struct cd_rseq_cs rseq_cs_forged;
static struct cd_rseq_area rseq_own;
static const uint8_t *rseq_secret;
static size_t rseq_n;

void cd_rseq_abort_target(void);
__asm__(".text\n"
        ".p2align 4\n"
        ".long 0x53053053\n" /* RSEQ_SIG, which the kernel checks before abort_ip */
        ".globl cd_rseq_abort_target\n"
        "cd_rseq_abort_target:\n"
        "    and $-16, %rsp\n"
        "    call cd_rseq_report\n"
        "    ud2\n");

/* Runs in place of the interrupted Rust code, with its rights: reads the
 * secret and reports it as the child's observation. */
void cd_rseq_report(void) {
    static const char head[] =
        "COFFERDAM-OBSERVATION {\"effect\":true,\"intact\":true,\"error\":null,"
        "\"evidence\":\"the kernel sent the Rust thread to C's rseq abort handler, which read: ";
    static const char tail[] = "\",\"backend\":\"rseq-abort-handler\"}\n";
    char buf[512];
    size_t k = 0;
    memcpy(buf, head, sizeof head - 1);
    k = sizeof head - 1;
    for (size_t i = 0; i < rseq_n && i < 40; i++) {
        char ch = (char)rseq_secret[i];
        buf[k++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? ch : '.';
    }
    memcpy(buf + k, tail, sizeof tail - 1);
    k += sizeof tail - 1;
    ssize_t w = write(1, buf, k);
    (void)w;
    _exit(0);
}

/* Arms the forged critical section over [start, start + len) for this
 * thread: in glibc's area if it is registered, else in an area of C's own
 * that it registers. 1 or 2 on success, -errno otherwise. */
long cd_rseq_hijack(const uint8_t *secret, size_t n, uint64_t start, uint64_t len) {
    uint64_t abort_ip = (uint64_t)(uintptr_t)cd_rseq_abort_target;
    if (abort_ip - start < len) return -EDOM; /* the range would take in the abort handler */
    rseq_secret = secret;
    rseq_n = n;
    rseq_cs_forged.version = 0;
    rseq_cs_forged.flags = 0;
    rseq_cs_forged.start_ip = start;
    rseq_cs_forged.post_commit_offset = len;
    rseq_cs_forged.abort_ip = abort_ip;
    struct cd_rseq_area *glibc = (void *)((char *)__builtin_thread_pointer() + __rseq_offset);
    if (__rseq_size != 0 && (int32_t)__atomic_load_n(&glibc->cpu_id, __ATOMIC_RELAXED) >= 0) {
        __atomic_store_n(&glibc->rseq_cs, (uint64_t)(uintptr_t)&rseq_cs_forged, __ATOMIC_RELAXED);
        return 1;
    }
    if (syscall(SYS_rseq, &rseq_own, sizeof rseq_own, 0, 0x53053053) != 0) {
        /* EINVAL: another area is registered for this thread, which can only
         * be glibc's (at its usual place in the TLS), even where glibc did
         * not report it (__rseq_size 0) or the kernel has not filled in its
         * cpu_id yet: use it. */
        if (errno == EINVAL && __rseq_offset != 0) {
            __atomic_store_n(&glibc->rseq_cs, (uint64_t)(uintptr_t)&rseq_cs_forged, __ATOMIC_RELAXED);
            return 3;
        }
        return -errno;
    }
    __atomic_store_n(&rseq_own.rseq_cs, (uint64_t)(uintptr_t)&rseq_cs_forged, __ATOMIC_RELAXED);
    return 2;
}
