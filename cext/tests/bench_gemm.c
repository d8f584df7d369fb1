/* bench_gemm.c: GFLOP/s of mm_packed and mm_nt at the shapes of a char-RNN, 1 and 2 threads.
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -fopenmp cext/gemm.c cext/tests/bench_gemm.c -lm -o /tmp/bench_gemm
 *   /tmp/bench_gemm
 *
 * Each figure is the best of several runs (2 M N K flops per product); mm_pack is not timed.
 * The machine should be otherwise idle: with 2 threads on 2 busy cores, figures collapse. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../gemm.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((s >> 40) * 0x1p-24) - 0.5f;
    }
}

/* Best GFLOP/s over repetitions that last about 0.5 s in all. which: 0 mm_packed with A
 * row-major, 1 mm_packed with A stored transposed (as in a weight gradient), 2 mm_nt. */
static double bench(int which, int M, int N, int K, int nthreads) {
    float *A = malloc(sizeof(float) * (size_t)M * K);
    float *B = malloc(sizeof(float) * (size_t)K * N);   /* (K, N) for mm_packed, (N, K) for mm_nt */
    float *Bp = malloc(sizeof(float) * mm_packed_size(K, N));
    float *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !Bp || !C) { fprintf(stderr, "out of memory\n"); exit(1); }
    fill(A, (size_t)M * K, 1);
    fill(B, (size_t)K * N, 2);
    if (which < 2) mm_pack(K, N, B, N, 1, Bp, nthreads);
    double best = 1e30, total = 0;
    for (int rep = 0; rep < 1000 && (rep < 3 || total < 0.5); rep++) {
        double t = now();
        if (which == 0) mm_packed(M, N, K, A, K, 1, Bp, C, N, 0, nthreads);
        else if (which == 1) mm_packed(M, N, K, A, 1, M, Bp, C, N, 0, nthreads);
        else mm_nt(M, N, K, A, K, B, K, C, N, 0, nthreads);
        t = now() - t;
        total += t;
        if (t < best) best = t;
    }
    free(A); free(B); free(Bp); free(C);
    return 2.0 * M * N * K / best * 1e-9;
}

int main(void) {
    static const char *names[] = {"mm_packed", "packed A^T", "mm_nt"};
    static const struct { int which, M, N, K; } shapes[] = {
        {0, 2048, 2048, 512}, {0, 2048, 512, 2048}, {1, 2048, 512, 2048}, {0, 512, 2048, 2048},
        {0, 32, 2048, 512}, {2, 32, 2048, 512}, {0, 1, 2048, 512}, {2, 1, 2048, 512},
        {2, 2, 2048, 512}, {2, 4, 2048, 512},
    };
    printf("avx2+fma: %s\n", mm_have_avx2() ? "yes" : "no");
    printf("%-10s %6s %6s %6s %12s %12s\n", "product", "M", "N", "K", "1 thread", "2 threads");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int w = shapes[s].which, M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        double g1 = bench(w, M, N, K, 1), g2 = bench(w, M, N, K, 2);
        printf("%-10s %6d %6d %6d %12.1f %12.1f GFLOP/s\n", names[w], M, N, K, g1, g2);
    }
    return 0;
}
