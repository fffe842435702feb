/* A shared library with a WRPKRU of its own: Compartment::load must refuse
 * it; loaded by plain dlopen and called, the first-call inspection must. */
#include <stddef.h>
#include <stdint.h>

int cd_lib_escalate(const uint8_t *secret, uint8_t *out, size_t n, int have_pku) {
    if (have_pku)
        __asm__ volatile("xor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%eax, %%eax\n\twrpkru"
                         ::: "eax", "ecx", "edx", "memory");
    for (size_t i = 0; i < n; i++)
        ((volatile uint8_t *)out)[i] = ((const volatile uint8_t *)secret)[i];
    return 1;
}

int cd_lib_add(int a, int b) { return a + b; }
