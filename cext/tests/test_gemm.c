/* test_gemm.c: mm_pack, mm_packed, mm_packed_cols and mm_nt against a naive product in double
 * (and the core's other vector kernels against their plain C: bfloat16, int8, the clip-and-norm pass).
 *
 *   make test-c               (builds it against the core's objects and runs it: exit status 0
 *                              when every check passes; one line per failure)
 *
 * For every shape, every layout of A and B (row-major or transposed, with padded leading
 * dimensions), accumulate 0 and 1, and every kernel (portable, and AVX2+FMA when the CPU has it):
 *   1. exact: with small integers every product and partial sum is an integer below 2^24, so any
 *      order of float operations is exact and C must equal the reference exactly;
 *   2. accuracy: with uniform values in [-1, 1), |C - ref| must be within the bound below;
 *   3. C is written only at its (M, N) elements: the padding of C keeps a sentinel, and with
 *      accumulate = 0 C starts as NaN so a kernel that read it would fail;
 *   4. determinism: bitwise equal results for nthreads = 1, 2, 3, for mm_packed_cols over several
 *      column splits (also from inside a parallel region), and between mm_packed and its kernel;
 *   5. order: the AVX2+FMA kernels give, bitwise, the order of operations gemm.c documents,
 *      replayed here with fmaf (at up to 300 elements of each product).
 * Buffers are allocated to their exact extent, so -fsanitize=address catches any overrun, except
 * by masked vector loads and stores, which it does not see: test_guard_pages puts the ends of A,
 * W and C against a page that may not be touched.
 *
 * Tolerance. Each C(i, j) is a chain s = s + a_k b_k over k, started from 0 (then added to C0
 * when accumulating) or continued from C0. Each step rounds at most twice (product, sum; once with
 * FMA), and the final add of C0 once more, so with u = 2^-24 (float32 unit round-off) the
 * classical bound (Higham, Accuracy and Stability, 3.1) gives
 *     |C - ref| <= gamma(2K + 1) * (|C0| + sum_k |a_ik b_kj|),   gamma(n) = n u / (1 - n u).
 * (Counting every rounding is cruder than Higham's gamma(K + 1), and simpler to trust.) mm_nt
 * splits the sum into 8 lanes and a tree of 3 additions, which only shortens the chains, so the
 * same bound holds. The double reference adds at most gamma_double(K + 1) <= K 2^-52 of the same
 * magnitude. The bound is rigorous, not a guess of the typical error, so it cannot fail
 * spuriously; it does catch a kernel that loses precision (say, by summing in half precision),
 * while checks 1 and 5 catch a wrong index, a lost term or a stale C. */
#define _POSIX_C_SOURCE 200809L   /* setenv, execv */
#define _DEFAULT_SOURCE           /* MAP_ANONYMOUS */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../gemm.h"
#include "../internal.h"   /* bf16_to_float, float_to_bf16 */

static int failures = 0;
static int checks = 0;

/* One line per failure (the first 50). */
#define FAIL(...) \
    do { if (failures++ < 50) { printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- random numbers: xorshift64 */

typedef struct { uint64_t s; } rng_t;

static uint64_t rng_next(rng_t *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}
static int rng_int(rng_t *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }        /* [0, n) */
static float rng_unif(rng_t *r) { return (float)((rng_next(r) >> 40) * 0x1p-23) - 1.0f; } /* [-1, 1) */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { printf("out of memory\n"); exit(2); }
    return p;
}

/* ---- a test case: the logical matrices and their stored layouts */

typedef struct {
    int M, N, K;
    int exact;                 /* small integers instead of uniform values */
    float *a, *b, *c0;         /* logical A (M, K), B (K, N), C0 (M, N), row-major, dense */
    double *ref, *mag;         /* sum_k a b, and sum_k |a b| */
} problem;

static problem make_problem(int M, int N, int K, int exact, rng_t *r) {
    problem p = {M, N, K, exact, NULL, NULL, NULL, NULL, NULL};
    p.a = xmalloc(sizeof(float) * (size_t)M * K);
    p.b = xmalloc(sizeof(float) * (size_t)K * N);
    p.c0 = xmalloc(sizeof(float) * (size_t)M * N);
    p.ref = xmalloc(sizeof(double) * (size_t)M * N);
    p.mag = xmalloc(sizeof(double) * (size_t)M * N);
    float *all[3] = {p.a, p.b, p.c0};
    size_t len[3] = {(size_t)M * K, (size_t)K * N, (size_t)M * N};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < len[t]; i++)
            all[t][i] = exact ? (float)(rng_int(r, 9) - 4) : rng_unif(r);
    for (size_t i = 0; i < (size_t)M * N; i++) p.ref[i] = p.mag[i] = 0.0;
    for (int i = 0; i < M; i++)                /* i, k, j order: the j loop vectorizes */
        for (int k = 0; k < K; k++) {
            double a = p.a[(size_t)i * K + k];
            for (int j = 0; j < N; j++) {
                double ab = a * p.b[(size_t)k * N + j];
                p.ref[(size_t)i * N + j] += ab;
                p.mag[(size_t)i * N + j] += fabs(ab);
            }
        }
    return p;
}

static void free_problem(problem *p) {
    free(p->a); free(p->b); free(p->c0); free(p->ref); free(p->mag);
}

/* A matrix (rows, cols) stored row-major (trans = 0) or as its transpose (trans = 1), with a
 * padded leading dimension, in a buffer that ends right after its last element. */
typedef struct {
    float *buf;
    ptrdiff_t rs, cs;          /* X(i, j) = buf[i*rs + j*cs] */
} strided;

static strided store(const float *x, int rows, int cols, int trans, int pad) {
    strided s;
    int inner = trans ? rows : cols, outer = trans ? cols : rows;
    ptrdiff_t ld = inner + pad;
    size_t n = outer > 0 && inner > 0 ? (size_t)(outer - 1) * ld + inner : 0;
    s.buf = xmalloc(sizeof(float) * n);
    s.rs = trans ? 1 : ld;
    s.cs = trans ? ld : 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) s.buf[i * s.rs + j * s.cs] = x[(size_t)i * cols + j];
    return s;
}

/* C (M, N) with row stride ldc: the elements are C0 (accumulate) or NaN, the padding a sentinel. */
#define SENTINEL 12345.0f
static float *make_c(const problem *p, ptrdiff_t ldc, int accumulate) {
    size_t n = (size_t)p->M * ldc;
    float *c = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) c[i] = SENTINEL;
    for (int i = 0; i < p->M; i++)
        for (int j = 0; j < p->N; j++) c[i * ldc + j] = accumulate ? p->c0[(size_t)i * p->N + j] : NAN;
    return c;
}

static double gamma_n(double n) { double u = 0x1p-24; return n * u / (1.0 - n * u); }

/* Compare C with the reference; report the first bad element. */
static void check_c(const problem *p, const float *c, ptrdiff_t ldc, int accumulate, const char *what) {
    checks++;
    double g = gamma_n(2.0 * p->K + 1) + p->K * 0x1p-52;
    for (int i = 0; i < p->M; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j >= p->N) {
                if (got != SENTINEL) {
                    FAIL("%s: M=%d N=%d K=%d: padding C(%d, %d) overwritten",
                         what, p->M, p->N, p->K, i, j);
                    return;
                }
                continue;
            }
            double c0 = accumulate ? p->c0[(size_t)i * p->N + j] : 0.0;
            double want = c0 + p->ref[(size_t)i * p->N + j];
            double tol = p->exact ? 0.0 : g * (fabs(c0) + p->mag[(size_t)i * p->N + j]);
            if (!(fabs(got - want) <= tol)) {
                FAIL("%s: M=%d N=%d K=%d acc=%d: C(%d, %d) = %.9g, want %.9g (tol %.3g)",
                     what, p->M, p->N, p->K, accumulate, i, j, got, want, tol);
                return;
            }
        }
    }
}

/* The order of operations that gemm.c documents for its AVX2+FMA kernels, replayed with fmaf
 * (correctly rounded, like the hardware FMA). mm_packed: the k-blocks of at most GEMM_KC, fixed
 * by K; the first block's chain from 0, added to C0 when accumulating; later blocks continue the
 * chain. mm_nt: 8 lanes over k mod 8 (a last partial group adds 0 * 0), then a fixed tree. */
#define GEMM_KC 256

static float order_packed(const problem *p, int i, int j, int accumulate) {
    int K = p->K, N = p->N, nkb = (K + GEMM_KC - 1) / GEMM_KC;
    float c0 = p->c0[(size_t)i * N + j], s = 0.0f;
    if (K == 0) return accumulate ? c0 : 0.0f;
    for (int b = 0; b < nkb; b++) {
        int k0 = (int)((long long)K * b / nkb), k1 = (int)((long long)K * (b + 1) / nkb);
        for (int k = k0; k < k1; k++) s = fmaf(p->a[(size_t)i * K + k], p->b[(size_t)k * N + j], s);
        if (b == 0 && accumulate) s = c0 + s;
    }
    return s;
}

static float order_nt(const problem *p, int i, int j, int accumulate) {
    int K = p->K, N = p->N;
    float l[8] = {0};
    for (int k = 0; k < (K + 7) / 8 * 8; k++)
        l[k % 8] = k < K ? fmaf(p->a[(size_t)i * K + k], p->b[(size_t)k * N + j], l[k % 8])
                         : fmaf(0.0f, 0.0f, l[k % 8]);
    float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    return accumulate ? p->c0[(size_t)i * N + j] + d : d;
}

/* C must equal the replayed order bitwise, at up to 300 elements picked at random. */
static void check_order(const problem *p, const float *c, ptrdiff_t ldc, int accumulate, int nt,
                        const char *what, rng_t *r) {
    checks++;
    size_t n = (size_t)p->M * p->N;
    for (size_t t = 0; t < n && t < 300; t++) {
        size_t e = n <= 300 ? t : (size_t)(rng_next(r) % n);
        int i = (int)(e / p->N), j = (int)(e % p->N);
        float want = nt ? order_nt(p, i, j, accumulate) : order_packed(p, i, j, accumulate);
        if (memcmp(&want, &c[i * ldc + j], sizeof want) != 0) {
            FAIL("%s: M=%d N=%d K=%d acc=%d: C(%d, %d) = %a, not %a as the documented order gives",
                 what, p->M, p->N, p->K, accumulate, i, j, c[i * ldc + j], want);
            return;
        }
    }
}

static void check_same(const float *x, const float *y, size_t n, const problem *p, const char *what) {
    checks++;
    if (memcmp(x, y, n * sizeof(float)) != 0)
        FAIL("%s: M=%d N=%d K=%d: not bitwise identical", what, p->M, p->N, p->K);
}

/* ---- mm_pack + mm_packed */

typedef void (*packed_fn)(int, int, int, const float *, ptrdiff_t, ptrdiff_t, const float *, float *,
                          ptrdiff_t, int, int);

/* determinism: 0 = accuracy only, 1 = also other thread counts and column splits. */
static void test_packed_layout(const problem *p, int ta, int tb, int accumulate, int determinism,
                               rng_t *r) {
    int M = p->M, N = p->N, K = p->K;
    strided A = store(p->a, M, K, ta, rng_int(r, 3));
    strided B = store(p->b, K, N, tb, rng_int(r, 3));
    size_t np = mm_packed_size(K, N);
    float *Bp = xmalloc(sizeof(float) * np);
    mm_pack(K, N, B.buf, B.rs, B.cs, Bp, 1 + rng_int(r, 3));
    ptrdiff_t ldc = N + rng_int(r, 3);
    size_t nc = (size_t)M * ldc;
    char what[96];

    struct { const char *name; packed_fn fn; } kernels[3] = {
        {"mm_packed_portable", mm_packed_portable},
        {"mm_packed_avx2", mm_packed_avx2},
        {"mm_packed", mm_packed}};
    float *first[3] = {NULL, NULL, NULL};
    for (int kk = 0; kk < 3; kk++) {
        if (kk == 1 && !mm_have_avx2()) continue;
        if (kk == 2 && !determinism) continue;
        float *c = make_c(p, ldc, accumulate);
        kernels[kk].fn(M, N, K, A.buf, A.rs, A.cs, Bp, c, ldc, accumulate, 1);
        snprintf(what, sizeof what, "%s A%s B%s", kernels[kk].name, ta ? "t" : "", tb ? "t" : "");
        check_c(p, c, ldc, accumulate, what);
        if (kk == 1) check_order(p, c, ldc, accumulate, 0, what, r);
        first[kk] = c;
        if (!determinism) continue;
        for (int nt = 2; nt <= 3; nt++) {
            float *c2 = make_c(p, ldc, accumulate);
            kernels[kk].fn(M, N, K, A.buf, A.rs, A.cs, Bp, c2, ldc, accumulate, nt);
            snprintf(what, sizeof what, "%s A%s B%s acc=%d threads 1 vs %d", kernels[kk].name,
                     ta ? "t" : "", tb ? "t" : "", accumulate, nt);
            check_same(c, c2, nc, p, what);
            free(c2);
        }
    }
    if (determinism) {
        /* mm_packed is one of the two kernels */
        check_same(first[mm_have_avx2() ? 1 : 0], first[2], nc, p, "mm_packed vs its kernel");
        /* mm_packed_cols: a random split of the panels into up to 4 calls, in random order */
        int npanels = (N + MM_NR - 1) / MM_NR;
        for (int trial = 0; trial < 3; trial++) {
            int cut[5] = {0, 0, 0, 0, npanels};
            for (int t = 1; t < 4; t++) cut[t] = npanels ? rng_int(r, npanels + 1) : 0;
            for (int t = 1; t < 4; t++)          /* sort the three inner cuts */
                for (int u = t + 1; u < 4; u++)
                    if (cut[u] < cut[t]) { int x = cut[t]; cut[t] = cut[u]; cut[u] = x; }
            float *c2 = make_c(p, ldc, accumulate);
            for (int t = 3; t >= 0; t--) {
                int j0 = cut[t] * MM_NR, j1 = cut[t + 1] * MM_NR;
                if (j1 > N) j1 = N;
                if (j0 < j1)
                    mm_packed_cols(M, N, K, A.buf, A.rs, A.cs, Bp, c2, ldc, accumulate, j0, j1);
            }
            check_same(first[2], c2, nc, p, "mm_packed_cols split vs mm_packed");
            free(c2);
        }
        /* mm_packed_cols one panel per iteration of the caller's own parallel loop */
        float *c3 = make_c(p, ldc, accumulate);
        #pragma omp parallel for schedule(dynamic) num_threads(3)
        for (int q = 0; q < npanels; q++) {
            int j1 = (q + 1) * MM_NR < N ? (q + 1) * MM_NR : N;
            mm_packed_cols(M, N, K, A.buf, A.rs, A.cs, Bp, c3, ldc, accumulate, q * MM_NR, j1);
        }
        check_same(first[2], c3, nc, p, "mm_packed_cols in a parallel region vs mm_packed");
        free(c3);
    }
    for (int kk = 0; kk < 3; kk++) free(first[kk]);
    free(A.buf); free(B.buf); free(Bp);
}

/* mm_pack: zero padding right of N, and independent of the thread count. */
static void test_pack(const problem *p, rng_t *r) {
    int K = p->K, N = p->N;
    size_t np = mm_packed_size(K, N);
    size_t want = (size_t)((N + MM_NR - 1) / MM_NR) * MM_NR * (size_t)(K > 0 ? K : 0);
    checks++;
    if (np != want) { FAIL("mm_packed_size(%d, %d) = %zu, want %zu", K, N, np, want); return; }
    float *ref = xmalloc(sizeof(float) * np);
    for (size_t i = 0; i < np; i++) ref[i] = 0.0f;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            ref[((size_t)(j / MM_NR) * K + k) * MM_NR + j % MM_NR] = p->b[(size_t)k * N + j];
    for (int tb = 0; tb < 2; tb++) {
        strided B = store(p->b, K, N, tb, rng_int(r, 3));
        for (int nt = 1; nt <= 3; nt++) {
            float *Bp = xmalloc(sizeof(float) * np);
            for (size_t i = 0; i < np; i++) Bp[i] = NAN;
            mm_pack(K, N, B.buf, B.rs, B.cs, Bp, nt);
            check_same(ref, Bp, np, p, tb ? "mm_pack B transposed" : "mm_pack B row-major");
            free(Bp);
        }
        free(B.buf);
    }
    free(ref);
}

static void test_packed(int M, int N, int K, int determinism, rng_t *r) {
    int big = (double)M * N * K > 1e8;     /* the uniform pass suffices, and saves a minute of ASan */
    for (int exact = !big; exact >= 0; exact--) {
        problem p = make_problem(M, N, K, exact, r);
        if (exact) test_pack(&p, r);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++)
                    /* big: thread counts and splits only for dW += dY^T X (A transposed) */
                    test_packed_layout(&p, ta, tb, acc,
                                       determinism && !exact && (!big || (ta && !tb && acc)), r);
        free_problem(&p);
    }
}

/* ---- mm_nt: W is B^T, stored (N, K) row-major */

typedef void (*nt_fn)(int, int, int, const float *, ptrdiff_t, const float *, ptrdiff_t, float *,
                      ptrdiff_t, int, int);

typedef void (*pnt_fn)(int, int, int, const float *, ptrdiff_t, const float *, float *, ptrdiff_t, int, int,
                       int);

/* mm_nt_prepared (or _bf16, half) of W (N, K; row stride ldw) prepared, against mm_nt's bits:
 * want_portable of the portable kernels, want of the best; threads 1 to 3, and the rows in two
 * calls split at a group of 8 (as model.c starts a thread's units or a gate's rows). */
static void check_prepared(int M, int N, int K, strided A, const void *W, ptrdiff_t ldw, int half, ptrdiff_t ldc,
                           int acc, const float *want_portable, const float *want, const problem *p, rng_t *r) {
    size_t size = half ? sizeof(uint16_t) : sizeof(float), nc = (size_t)M * ldc;
    void *P = xmalloc(size * mm_prepared_size(N, K));   /* exactly: ASan sees a read past it */
    if (half) mm_prepare_bf16(N, K, W, ldw, P, 2);
    else mm_prepare(N, K, W, ldw, P, 1 + rng_int(r, 3));
    float *c = make_c(p, ldc, acc);
    mm_nt_prepared_portable(M, N, K, A.buf, A.rs, P, half, c, ldc, acc, 1);
    check_same(want_portable, c, nc, p, "mm_nt_prepared_portable vs mm_nt_portable");
    free(c);
    for (int nt = 1; nt <= 3; nt++) {
        c = make_c(p, ldc, acc);
        int split = 8 * rng_int(r, N / 8 + 1);
        const void *rest = (const char *)P + size * (split ? mm_prepared_size(split, K) : 0);
        if (half) {
            mm_nt_prepared_bf16(M, split, K, A.buf, A.rs, P, c, ldc, acc, nt);
            mm_nt_prepared_bf16(M, N - split, K, A.buf, A.rs, rest, c + split, ldc, acc, nt);
        } else {
            mm_nt_prepared(M, split, K, A.buf, A.rs, P, c, ldc, acc, nt);
            mm_nt_prepared(M, N - split, K, A.buf, A.rs, rest, c + split, ldc, acc, nt);
        }
        check_same(want, c, nc, p, half ? "mm_nt_prepared_bf16 vs mm_nt_bf16" : "mm_nt_prepared vs mm_nt");
        free(c);
    }
    free(P);
}

static void test_nt(int M, int N, int K, rng_t *r) {
    for (int exact = 1; exact >= 0; exact--) {
        problem p = make_problem(M, N, K, exact, r);
        float *bt = xmalloc(sizeof(float) * (size_t)N * K);
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++) bt[(size_t)j * K + k] = p.b[(size_t)k * N + j];
        for (int acc = 0; acc < 2; acc++) {
            strided A = store(p.a, M, K, 0, rng_int(r, 3));
            strided W = store(bt, N, K, 0, rng_int(r, 3));
            ptrdiff_t ldc = N + rng_int(r, 3);
            size_t nc = (size_t)M * ldc;
            struct { const char *name; nt_fn fn; } kernels[3] = {
                {"mm_nt_portable", mm_nt_portable}, {"mm_nt_avx2", mm_nt_avx2}, {"mm_nt", mm_nt}};
            float *first[3] = {NULL, NULL, NULL};
            for (int kk = 0; kk < 3; kk++) {
                if (kk == 1 && !mm_have_avx2()) continue;
                float *c = make_c(&p, ldc, acc);
                kernels[kk].fn(M, N, K, A.buf, A.rs, W.buf, W.rs, c, ldc, acc, 1);
                check_c(&p, c, ldc, acc, kernels[kk].name);
                if (kk == 1) check_order(&p, c, ldc, acc, 1, kernels[kk].name, r);
                first[kk] = c;
                for (int nt = 2; nt <= 3; nt++) {
                    float *c2 = make_c(&p, ldc, acc);
                    kernels[kk].fn(M, N, K, A.buf, A.rs, W.buf, W.rs, c2, ldc, acc, nt);
                    check_same(c, c2, nc, &p,
                               nt == 2 ? "mm_nt threads 1 vs 2" : "mm_nt threads 1 vs 3");
                    free(c2);
                }
            }
            check_same(first[mm_have_avx2() ? 1 : 0], first[2], nc, &p, "mm_nt vs its kernel");
            /* mm_packed_nt_cols from W^T packed: each kernel's bits, in two column ranges split at a
             * multiple of 16 */
            float *Bp = xmalloc(sizeof(float) * (mm_packed_size(K, N) + 1));
            mm_pack(K, N, W.buf, 1, W.rs, Bp, 1);
            struct { const char *name; pnt_fn fn; } pnts[3] = {
                {"mm_packed_nt_cols_portable vs mm_nt_portable", mm_packed_nt_cols_portable},
                {"mm_packed_nt_cols_avx2 vs mm_nt_avx2", mm_packed_nt_cols_avx2},
                {"mm_packed_nt_cols vs mm_nt", mm_packed_nt_cols}};
            for (int kk = 0; kk < 3; kk++) {
                if (kk == 1 && !mm_have_avx2()) continue;
                float *c = make_c(&p, ldc, acc);
                int split = MM_NR * rng_int(r, N / MM_NR + 1);
                pnts[kk].fn(M, N, K, A.buf, A.rs, Bp, c, ldc, acc, 0, split);
                pnts[kk].fn(M, N, K, A.buf, A.rs, Bp, c, ldc, acc, split, N);
                check_same(first[kk], c, nc, &p, pnts[kk].name);
                free(c);
            }
            free(Bp);
            check_prepared(M, N, K, A, W.buf, W.rs, 0, ldc, acc, first[0], first[2], &p, r);
            for (int kk = 0; kk < 3; kk++) free(first[kk]);
            free(A.buf); free(W.buf);
        }
        free(bt);
        free_problem(&p);
    }
}

/* ---- bfloat16 weights: mm_nt_bf16 and mm_pack_bf16 give exactly what mm_nt and mm_pack give on
 * the widened weights (threads 1 to 3), with the ends of rows at every K mod 8 */

static void test_bf16(int M, int N, int K, rng_t *r) {
    problem p = make_problem(M, N, K, 0, r);
    ptrdiff_t ldw = K + rng_int(r, 3), ldc = N + rng_int(r, 3);
    uint16_t *w16 = xmalloc(sizeof(uint16_t) * ((size_t)N * ldw + 1));
    float *wide = xmalloc(sizeof(float) * ((size_t)N * ldw + 1));
    for (size_t i = 0; i < (size_t)N * ldw; i++) {
        w16[i] = float_to_bf16(rng_unif(r));
        wide[i] = bf16_to_float(w16[i]);
    }
    size_t nc = (size_t)M * ldc;
    for (int acc = 0; acc < 2; acc++) {
        float *want = make_c(&p, ldc, acc), *portable = make_c(&p, ldc, acc), *plain = make_c(&p, ldc, acc);
        mm_nt(M, N, K, p.a, K, wide, ldw, want, ldc, acc, 1);
        mm_nt_portable(M, N, K, p.a, K, wide, ldw, plain, ldc, acc, 1);
        mm_nt_bf16_portable(M, N, K, p.a, K, w16, ldw, portable, ldc, acc, 2);
        check_same(plain, portable, nc, &p, "mm_nt_bf16_portable vs mm_nt_portable of the widened weights");
        strided A = {p.a, K, 1};
        check_prepared(M, N, K, A, w16, ldw, 1, ldc, acc, plain, want, &p, r);
        for (int nt = 1; nt <= 3; nt++) {
            float *got = make_c(&p, ldc, acc);
            mm_nt_bf16(M, N, K, p.a, K, w16, ldw, got, ldc, acc, nt);
            check_same(want, got, nc, &p, "mm_nt_bf16 vs mm_nt of the widened weights");
            free(got);
        }
        free(want); free(portable); free(plain);
    }
    size_t np = mm_packed_size(K, N);   /* B (K, N) = W^T: rsb 1, csb ldw, as model.c packs W^T */
    float *pw = xmalloc(sizeof(float) * (np + 1)), *p16 = xmalloc(sizeof(float) * (np + 1));
    mm_pack(K, N, wide, 1, ldw, pw, 1);
    mm_pack_bf16(K, N, w16, 1, ldw, p16, 2);
    check_same(pw, p16, np, &p, "mm_pack_bf16 vs mm_pack of the widened weights");
    free(pw); free(p16); free(w16); free(wide);
    free_problem(&p);
}

/* The int8 products by kernel: the best the CPU has (VNNI, else AVX2), AVX2's, plain C's. */
typedef void (*i8_mm)(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
                      ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate,
                      int nthreads);
static const struct { const char *name; i8_mm mm; } i8_kinds[] = {
    {"mm_nt_i8", mm_nt_i8}, {"mm_nt_i8_avx2", mm_nt_i8_avx2}, {"mm_nt_i8_portable", mm_nt_i8_portable}};
#define I8_KINDS ((int)(sizeof i8_kinds / sizeof i8_kinds[0]))

/* mm_nt_i8 (VNNI when the CPU has it), mm_nt_i8_avx2 and mm_nt_i8_portable against the exact sums computed here in
 * int64, then scaled as int8.c says: every result bit for bit, for 1 to 3 threads. q covers
 * [-127, 127] uniformly (the extremes too), and the scales are powers of two from 2^-20 to 2^3. */
static void test_i8(int M, int N, int K, rng_t *r) {
    ptrdiff_t lda = K + rng_int(r, 70), ldw = K + rng_int(r, 3), ldc = N + rng_int(r, 3);
    int8_t *a = xmalloc((size_t)M * lda + 1), *w = xmalloc((size_t)N * ldw + 1);
    float *sa = xmalloc(sizeof(float) * (M + 1)), *sw = xmalloc(sizeof(float) * (N + 1));
    int32_t *sum = xmalloc(sizeof(int32_t) * (N + 1));
    for (size_t i = 0; i < (size_t)M * lda; i++) a[i] = (int8_t)(rng_int(r, 255) - 127);
    for (size_t i = 0; i < (size_t)N * ldw; i++) w[i] = (int8_t)(rng_int(r, 255) - 127);
    for (int i = 0; i < M; i++) sa[i] = ldexpf(1.0f, rng_int(r, 24) - 20);
    for (int j = 0; j < N; j++) {
        sw[j] = ldexpf(1.0f, rng_int(r, 24) - 20);
        sum[j] = 0;
        for (int k = 0; k < K; k++) sum[j] += w[j * ldw + k];
    }
    size_t nc = (size_t)M * ldc + 1;
    for (int acc = 0; acc < 2; acc++) {
        float *want = xmalloc(sizeof(float) * nc), *c0 = xmalloc(sizeof(float) * nc);
        for (size_t i = 0; i < nc; i++) c0[i] = rng_unif(r);
        for (size_t i = 0; i < nc; i++) want[i] = c0[i];
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                int64_t dot = 0;
                for (int k = 0; k < K; k++) dot += (int64_t)a[i * lda + k] * w[j * ldw + k];
                float y = ((float)dot * sw[j]) * sa[i];
                want[i * ldc + j] = acc ? c0[i * ldc + j] + y : y;
            }
        for (int kind = 0; kind < I8_KINDS; kind++)
            for (int nt = 1; nt <= 3; nt++) {
                float *got = xmalloc(sizeof(float) * nc);
                memcpy(got, c0, sizeof(float) * nc);
                i8_kinds[kind].mm(M, N, K, a, lda, sa, w, ldw, sw, sum, got, ldc, acc, nt);
                checks++;
                if (memcmp(got, want, sizeof(float) * nc) != 0)
                    FAIL("%s M=%d N=%d K=%d acc=%d nt=%d: not the exact sums, scaled", i8_kinds[kind].name,
                         M, N, K, acc, nt);
                free(got);
            }
        /* from W prepared (mm_prepare_i8): its two kernels, 1-3 threads, rows split at a group of 8 */
        int8_t *P = xmalloc(mm_i8_prepared_size(N, K));   /* exactly, as above */
        mm_prepare_i8(N, K, w, ldw, P, 1 + rng_int(r, 3));
        for (int portable = 0; portable < 2; portable++)
            for (int nt = 1; nt <= 3; nt++) {
                float *got = xmalloc(sizeof(float) * nc);
                memcpy(got, c0, sizeof(float) * nc);
                int split = 8 * rng_int(r, N / 8 + 1);
                const int8_t *rest = P + (split ? mm_i8_prepared_size(split, K) : 0);
                void (*mm)(int, int, int, const int8_t *, ptrdiff_t, const float *, const int8_t *, const float *,
                           float *, ptrdiff_t, int, int) = portable ? mm_nt_i8_prepared_portable : mm_nt_i8_prepared;
                mm(M, split, K, a, lda, sa, P, sw, got, ldc, acc, nt);
                mm(M, N - split, K, a, lda, sa, rest, sw + split, got + split, ldc, acc, nt);
                checks++;
                if (memcmp(got, want, sizeof(float) * nc) != 0)
                    FAIL("mm_nt_i8_prepared%s M=%d N=%d K=%d acc=%d nt=%d: not the exact sums, scaled",
                         portable ? "_portable" : "", M, N, K, acc, nt);
                free(got);
            }
        free(P);
        free(want); free(c0);
    }
    free(a); free(w); free(sa); free(sw); free(sum);
}

/* The longest rows int8 takes (INT8_MAX_COLS), every q at an extreme: the sum 127^2 K is just
 * under 2^31, while VNNI's (a + 128) w passes it and wraps; both kernels must give it exactly. */
static void test_i8_longest(int w0) {
    int K = INT8_MAX_COLS, N = 5;
    int8_t *a = xmalloc((size_t)K), *w = xmalloc((size_t)N * K);
    int32_t sum[5];
    float sa = 1.0f, sw[5] = {1, 1, 1, 1, 1}, got[5], want = (float)(127 * w0 * (int64_t)K);
    memset(a, 127, (size_t)K);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (int8_t)w0;
    for (int j = 0; j < N; j++) sum[j] = w0 * K;
    for (int kind = 0; kind < I8_KINDS; kind++) {
        i8_kinds[kind].mm(1, N, K, a, K, &sa, w, K, sw, sum, got, N, 0, 1);
        for (int j = 0; j < N; j++) {
            checks++;
            if (got[j] != want) FAIL("%s at K=%d, q %d: %g, not %g", i8_kinds[kind].name, K, w0, got[j], want);
        }
    }
    free(a); free(w);
}

/* The norm as optim.c documents its order: slices of n / 4096 (1 to 64), each in 32 lanes (element
 * j into lane (j - a) % 32) added pairwise, the slices' sums in order. */
static float norm_in_lanes(const float *x, size_t n) {
    size_t want = n / 4096;
    int slices = want < 1 ? 1 : want > 64 ? 64 : (int)want;
    double total = 0.0;
    for (int s = 0; s < slices; s++) {
        size_t a = n * (size_t)s / slices, b = n * (size_t)(s + 1) / slices;
        double lane[32] = {0};
        for (size_t j = a; j < b; j++) lane[(j - a) % 32] += (double)x[j] * x[j];
        for (int w = 16; w > 0; w /= 2)
            for (int k = 0; k < w; k++) lane[k] += lane[k + w];
        total += lane[0];
    }
    return (float)sqrt(total);
}

/* clip_value_and_norm (optim.c: on AVX-512 and AVX2 the clipping and the squares are one pass) against
 * minrnn_clip_value, then the norm without a limit: the same floats, bit for bit, and the same norm.
 * NaN stays NaN (and so does the norm), an infinity clips to the limit, -0 and the limits stay;
 * every length to 70 ends in every partial group. The norm is also summed in optim.c's order
 * (norm_in_lanes), at those lengths and at some of several slices. */
static void test_clip_and_norm(rng_t *r) {
    for (int t = 0; t <= 90; t++) {
        int n = t <= 70 ? t : 4000 + rng_int(r, 300000);   /* and several slices */
        float *a = xmalloc(sizeof(float) * (n + 1)), *b = xmalloc(sizeof(float) * (n + 1)), na, nb;
        for (int i = 0; i < n; i++) {
            static const float special[] = {NAN, INFINITY, -INFINITY, 1.0f, -1.0f, -0.0f};
            a[i] = rng_int(r, 4) || t > 70 ? 3.0f * rng_unif(r) : special[rng_int(r, n % 2 ? 6 : 5) + (n % 2 ? 0 : 1)];
        }
        memcpy(b, a, sizeof(float) * n);
        clip_value_and_norm(a, n, 1.0f, INFINITY, &na, 1 + n % 3);
        minrnn_clip_value(b, n, 1.0f);
        clip_value_and_norm(b, n, 0.0f, INFINITY, &nb, 1);
        float want = norm_in_lanes(b, n);
        checks++;
        if (memcmp(a, b, sizeof(float) * n) != 0 || !(na == nb || (isnan(na) && isnan(nb))))
            FAIL("clipping and norm in one pass, n = %d: norm %g, in two passes %g", n, (double)na, (double)nb);
        checks++;
        if (!(na == want || (isnan(na) && isnan(want))))
            FAIL("norm's order, n = %d: %.9g, in optim.c's lanes %.9g", n, (double)na, (double)want);
        free(a), free(b);
    }
}

/* ---- masked loads and stores at the end of a buffer */

/* n floats ending exactly where a PROT_NONE page starts, so that a read or write past them
 * faults; *map and *len for munmap. NULL if the system would not give it. */
static float *against_guard(size_t n, void **map, size_t *len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = n * sizeof(float);
    size_t body = (bytes + page - 1) / page * page;
    *len = body + page;
    char *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (mprotect(m + body, page, PROT_NONE) != 0) { munmap(m, *len); return NULL; }
    *map = m;
    return (float *)(m + body - bytes);
}

/* The AVX2 kernels mask the loads and stores of a tile cut by C's right edge (mm_packed) and of
 * a row's last K % 8 (mm_nt): with A, W and C ending at a guard page, a lane too many faults.
 * C must come out as from A in ordinary memory. Every cut of a panel (N % 16: in either half, or
 * none), short and tall tiles (M), one and two k-blocks. */
static void test_guard_pages(rng_t *r) {
    static const int ns[] = {1, 4, 8, 9, 15, 16, 17, 33, 100};
    static const int ks[] = {1, 9, 100, 257};
    for (int M = 1; M <= 7; M++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
                for (int acc = 0; acc < 2; acc++) {
                    int N = ns[b], K = ks[c];
                    size_t nc = (size_t)M * N;
                    problem p = make_problem(M, N, K, 0, r);
                    void *ma = NULL, *mw = NULL, *mc = NULL;
                    size_t la = 0, lw = 0, lc = 0;
                    float *A = against_guard((size_t)M * K, &ma, &la), *W = against_guard((size_t)N * K, &mw, &lw);
                    float *C = against_guard(nc, &mc, &lc);
                    checks++;
                    if (!A || !W || !C) {
                        FAIL("guard pages: mmap or mprotect failed");
                        return;
                    }
                    memcpy(A, p.a, sizeof(float) * M * K);
                    for (int j = 0; j < N; j++)   /* W = B^T: mm_nt and mm_packed multiply by the same B */
                        for (int k = 0; k < K; k++) W[(size_t)j * K + k] = p.b[(size_t)k * N + j];
                    float *Bp = xmalloc(sizeof(float) * mm_packed_size(K, N));
                    mm_pack(K, N, p.b, N, 1, Bp, 1);
                    float *c0 = make_c(&p, N, acc), *want = make_c(&p, N, acc);
                    memcpy(C, c0, sizeof(float) * nc);
                    mm_packed(M, N, K, p.a, K, 1, Bp, want, N, acc, 1);
                    mm_packed(M, N, K, A, K, 1, Bp, C, N, acc, 1);
                    check_same(want, C, nc, &p, "mm_packed with A and C against a guard page");
                    memcpy(want, c0, sizeof(float) * nc), memcpy(C, c0, sizeof(float) * nc);
                    mm_nt(M, N, K, p.a, K, W, K, want, N, acc, 1);
                    mm_nt(M, N, K, A, K, W, K, C, N, acc, 1);
                    check_same(want, C, nc, &p, "mm_nt with A, W and C against a guard page");
                    free(c0), free(want), free(Bp);
                    munmap(ma, la), munmap(mw, lw), munmap(mc, lc);
                    free_problem(&p);
                }
}

int main(int argc, char **argv) {
    /* 3 threads on a 2-core machine crawl when OpenMP's idle threads spin: they hold the cores the
     * late thread needs at every barrier. The wait policy is read at start-up, so restart once. */
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
        execv("/proc/self/exe", argv);    /* returns only on failure: then just run, slowly */
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;   /* skip the two big RNN shapes */
    rng_t r = {0x9E3779B97F4A7C15ull};
    printf("test_gemm: AVX2+FMA kernels %s; mm_packed and mm_nt run the %s kernels\n",
           mm_have_avx2() ? "tested" : "not available",
           mm_have_avx512() ? "AVX-512 (checked bitwise against AVX2)" : mm_have_avx2() ? "AVX2" : "portable");

    /* every remainder of M mod 6 and N mod 16, the empty cases, K around the k-block of 256 */
    static const int ms[] = {0, 1, 2, 3, 4, 5, 6, 7, 13, 59, 60, 61, 67};
    static const int ns[] = {0, 1, 15, 16, 17, 33, 70};
    static const int ks[] = {0, 1, 7, 8, 9, 70, 255, 256, 257, 513};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
                test_packed(ms[a], ns[b], ks[c], ks[c] <= 9 || (a + b + c) % 4 == 0, &r);
    /* random shapes in 0..70 */
    for (int t = 0; t < 300; t++)
        test_packed(rng_int(&r, 71), rng_int(&r, 71), rng_int(&r, 71), 1, &r);
    /* larger: several tasks in both directions, k-blocks of unequal length */
    test_packed(257, 300, 129, 1, &r);
    test_packed(130, 530, 600, 1, &r);
    if (!quick) {
        test_packed(32, 2048, 512, 1, &r);      /* an RNN layer: (T B, 4H) = (T B, In) (In, 4H) */
        test_packed(2048, 512, 2048, 1, &r);    /* its weight gradient: (4H, In) = dY^T X over T B */
    }

    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++)
                if ((a + b + c) % 3 == 0 || ks[c] < 10) test_nt(ms[a], ns[b], ks[c], &r);
    for (int t = 0; t < 300; t++)
        test_nt(rng_int(&r, 71), rng_int(&r, 71), rng_int(&r, 71), &r);
    for (int m = 1; m <= 4; m++) test_nt(m, 2048, 512, &r);   /* sampling: one token per stream */
    test_nt(3, 1000, 77, &r);
    test_nt(33, 250, 300, &r);

    for (int t = 0; t < 100; t++) test_bf16(rng_int(&r, 9), rng_int(&r, 40), rng_int(&r, 40), &r);
    test_bf16(1, 2048, 512, &r);
    test_bf16(32, 300, 77, &r);

    static const int k8[] = {0, 1, 63, 64, 65, 127, 128, 129, 511, 512, 700};
    for (size_t c = 0; c < sizeof k8 / sizeof *k8; c++)
        for (int m = 0; m <= 5; m++) test_i8(m, 1 + rng_int(&r, 13), k8[c], &r);
    for (int t = 0; t < 100; t++) test_i8(rng_int(&r, 9), rng_int(&r, 40), rng_int(&r, 200), &r);
    test_i8_longest(127), test_i8_longest(-127);
    test_i8(1, 2048, 512, &r);   /* sampling: one stream */
    test_i8(32, 260, 257, &r);   /* a batch of streams */
    printf("test_gemm: int8 products %s\n", mm_have_vnni() ? "with VNNI and AVX2 (checked against plain C)"
                                             : mm_have_avx2() ? "with AVX2 (checked against plain C)" : "in plain C");
    test_clip_and_norm(&r);
    test_guard_pages(&r);

    printf("test_gemm: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
