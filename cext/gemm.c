/* gemm.c: the matrix products of gemm.h.
 *
 *   mm_packed  C (M, N) = [C +] A (M, K) . B (K, N), B packed once by mm_pack (training, big M)
 *   mm_nt      C (M, N) = [C +] A (M, K) . W^T, W (N, K) row-major (sampling, M = 1..4)
 *
 * mm_packed is blocked like GotoBLAS / BLIS, with B already packed:
 *   threads split C into tasks: a chunk of at most MM_NC columns x a group of rows
 *   for each k-block [k0, k0 + kc), kc <= MM_KC
 *     for each block of rows of the task: A (mc, kc), read in place if row-major, else packed
 *       for each pass over np 16-column panels of the task: B slivers (kc, 16 np)   -> in L1
 *         for each whole tile of rows of the block: the micro-kernel, one tile of C
 *       then a last tile of fewer rows, in wider passes (up to 8 panels for one row)
 * A B sliver stays in L1 while every tile of rows of the block uses it, the A block (<= 120 KiB)
 * stays in L2 while every panel uses it, and the B block (kc, <= MM_NC) is read from L2 or L3 by
 * every row block. The AVX2 micro-kernel keeps a 6x16 tile in 12 ymm registers; per k it loads 16
 * floats of B and broadcasts 6 of A: 12 FMAs for 8 loads. The AVX-512 one keeps an 8x32 tile (two
 * panels) in 16 zmm registers: 16 FMAs of twice the width for 10 loads, and 8 rows tile a batch of
 * 32. Reading a row-major A in place (one stream per row) is as fast as packing it and costs
 * nothing; a transposed A is packed, a tile's rows contiguous per k.
 *
 * Order of operations, the determinism promise of gemm.h. The k-blocks of C(i, j) are
 *   [k_0, k_1), [k_1, k_2), ...   with k_b = b K / nkb and nkb = ceil(K / MM_KC),
 * a function of K only. The first block runs the chain s = 0; s = s + a_ik b_kj for k in order
 * (one fused multiply-add per step in the AVX2 kernel; a product, then a sum, in the portable one)
 * and stores s into C(i, j), or adds it to C(i, j) when accumulating. Each later block continues
 * the chain from the float in C(i, j). So without accumulation C(i, j) is the plain k-ordered
 * chain whatever MM_KC is, and with accumulation and K <= MM_KC it is C + (that chain). Nothing
 * depends on the thread count, the tasks, or the column range given to mm_packed_cols.
 */
#include "gemm.h"
#include "internal.h"   /* resolve_threads */

#include <string.h>

#ifdef __GNUC__
#define MM_INLINE __attribute__((always_inline)) inline
#else
#define MM_INLINE inline
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MM_X86 1
#include <immintrin.h>
#define MM_AVX2 __attribute__((target("avx2,fma")))
#define MM_AVX512 __attribute__((target("avx512f")))
#else
#define MM_X86 0
#endif

/* ----------------------------------------------------------------------------------------------
 * Blocking. Only MM_KC can change results (it fixes the k-blocks); the others are cache sizes
 * and only change speed. Measured on Zen 4 (32 KiB L1, 1 MiB L2): NC = 512 or 1024, MC = 120 or
 * 240, KC = 256 or 384 are all within noise of each other; MC = 60 in place, or a general KC of
 * 128, lose 5-15%. */

#define MM_MR 6          /* rows of a micro-tile, portable and AVX2 */
#define MM_NP_AVX2 4     /* the most panels of an AVX2 tile (one row: 8 sums in 16 registers) */
#define MM_MR_MAX 8      /* the tallest micro-tile (AVX-512) */
#define MM_NP_MAX 8      /* the widest micro-tile, in panels (AVX-512, one row) */
#define MM_KC 256        /* longest k-block: a B sliver (KC, 16) is 16 KiB, half of L1 */
#define MM_MC_PACKED 10  /* micro-tiles of A packed at once: (60 or 80, KC) floats = 60 or 80 KiB of stack */
#define MM_MC 120        /* rows of A per block when read in place: (120, KC) = 120 KiB (a multiple of
                          * every tile height) */
#define MM_NC 1024       /* columns of C per task: the B block (KC, NC) is 1 MiB */

/* What a micro-kernel does with the tile it computed. */
enum { MM_STORE = 0, MM_ADD = 1, MM_CONTINUE = 2 };

static int mm_min(int a, int b) { return a < b ? a : b; }
static int mm_cdiv(int a, int b) { return (a + b - 1) / b; }

/* k-block b of nkb over [0, K) is [K b / nkb, K (b + 1) / nkb). */
static int mm_kbound(int K, int nkb, int b) { return (int)((long long)K * b / nkb); }

int mm_have_avx2(void) {
#if MM_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* ----------------------------------------------------------------------------------------------
 * Packing. */

size_t mm_packed_size(int K, int N) {
    if (K <= 0 || N <= 0) return 0;
    return (size_t)mm_cdiv(N, MM_NR) * MM_NR * (size_t)K;
}

/* Bp is (ceil(N / 16), K, 16): panel p holds columns [16p, 16p + 16) of B row after row, the
 * columns past N zero. Panel p starts at Bp + 16 p K, its row k0 at + 16 k0. B is float32, or
 * bfloat16 (half), widened exactly as it is packed. */
static MM_INLINE void mm_pack_panel(int p, int K, int N, const void *B, ptrdiff_t rsb, ptrdiff_t csb,
                                    float *Bp, const int half) {
    int j0 = p * MM_NR, nr = mm_min(MM_NR, N - j0);
    for (int k = 0; k < K; k++) {
        ptrdiff_t src = k * rsb + j0 * csb;
        float *dst = Bp + ((size_t)p * K + k) * MM_NR;
        int j = 0;
        if (csb == 1 && !half) {   /* a whole panel row: a copy of constant size, inlined */
            if (nr == MM_NR) memcpy(dst, (const float *)B + src, MM_NR * sizeof(float));
            else memcpy(dst, (const float *)B + src, (size_t)nr * sizeof(float));
            j = nr;
        }
        for (; j < nr; j++)
            dst[j] = half ? bf16_to_float(((const uint16_t *)B)[src + j * csb]) : ((const float *)B)[src + j * csb];
        for (; j < MM_NR; j++) dst[j] = 0.0f;
    }
}

#if MM_X86
/* The 16 x 16 block r (row i in r[i]) transposed in place: 64 shuffles. */
MM_AVX512 static MM_INLINE void mm_transpose16(__m512 r[16]) {
    __m512 t[16];
    #pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {                 /* pairs of rows interleaved by float */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {                 /* then by pairs of floats */
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    #pragma GCC unroll 2
    for (int i = 0; i < 16; i += 8)                   /* then by quarters of 4 floats, twice */
        #pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            t[i + q] = _mm512_shuffle_f32x4(r[i + q], r[i + q + 4], 0x88);
            t[i + q + 4] = _mm512_shuffle_f32x4(r[i + q], r[i + q + 4], 0xdd);
        }
    #pragma GCC unroll 8
    for (int q = 0; q < 8; q++) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
    }
}

/* Panel p of B(k, j) = W[j][k] for a W of contiguous rows (rsb == 1, csb = its row stride): blocks
 * of 16 rows of W by 16 of its columns, a masked load per row, transposed in registers: 64 shuffles
 * for 256 floats, where 16 gathers took longer (min-char-rnn's W_hh^T, 100 x 100: 1,450 ns, now 1,010). */
MM_AVX512 static void mm_pack_panel_transposed(int p, int K, int N, const float *B, ptrdiff_t csb, float *Bp) {
    int j0 = p * MM_NR, nr = mm_min(MM_NR, N - j0);
    float *dst = Bp + (size_t)p * K * MM_NR;
    for (int k0 = 0; k0 < K; k0 += 16) {
        int kc = mm_min(16, K - k0);
        __mmask16 m = (__mmask16)((1u << kc) - 1u);
        __m512 r[16];
        #pragma GCC unroll 16
        for (int i = 0; i < 16; i++)   /* rows past N: zeros */
            r[i] = i < nr ? _mm512_maskz_loadu_ps(m, B + (j0 + i) * csb + k0) : _mm512_setzero_ps();
        mm_transpose16(r);
        #pragma GCC unroll 16
        for (int k = 0; k < kc; k++) _mm512_storeu_ps(dst + (size_t)(k0 + k) * MM_NR, r[k]);
    }
}

/* Panel p of a float32 B read along rows (csb == 1): a masked load per row, the columns past N
 * loaded as zeros. A row of the last panel was a memcpy call and a loop of zeros: min-char-rnn's
 * packs of 100 columns took up to 2.7 times as long (25 rows: 283 ns, now 105). */
MM_AVX512 static void mm_pack_panel_rows(int p, int K, int N, const float *B, ptrdiff_t rsb, float *Bp) {
    int j0 = p * MM_NR, nr = mm_min(MM_NR, N - j0);
    __mmask16 m = (__mmask16)((1u << nr) - 1u);
    const float *b = B + j0;
    float *dst = Bp + (size_t)p * K * MM_NR;
    for (int k = 0; k < K; k++) _mm512_storeu_ps(dst + (size_t)k * MM_NR, _mm512_maskz_loadu_ps(m, b + k * rsb));
}

/* The 8 x 8 block r (row i in r[i]) transposed in place: 24 shuffles. */
MM_AVX2 static MM_INLINE void mm_transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    #pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {                  /* pairs of rows interleaved by float */
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    #pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {                  /* then by pairs of floats */
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    #pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {                     /* then the 128-bit halves */
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
    }
}

/* mm_pack_panel_transposed without AVX-512: each half of a panel from 8 rows of W by 8 of its
 * columns, a masked load per row, transposed in registers (the plain loop, a strided load per
 * float, took 8% of min-char-rnn's step on a Zen 3). */
MM_AVX2 static void mm_pack_panel_transposed_avx2(int p, int K, int N, const float *B, ptrdiff_t csb, float *Bp) {
    int j0 = p * MM_NR, nr = mm_min(MM_NR, N - j0);
    float *dst = Bp + (size_t)p * K * MM_NR;
    for (int k0 = 0; k0 < K; k0 += 8) {
        int kc = mm_min(8, K - k0);
        __m256i m = mm_first_lanes(kc);
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            #pragma GCC unroll 8
            for (int i = 0; i < 8; i++)   /* rows past N: zeros */
                r[i] = 8 * h + i < nr ? _mm256_maskload_ps(B + (j0 + 8 * h + i) * csb + k0, m) : _mm256_setzero_ps();
            mm_transpose8(r);
            #pragma GCC unroll 8
            for (int k = 0; k < kc; k++) _mm256_storeu_ps(dst + (size_t)(k0 + k) * MM_NR + 8 * h, r[k]);
        }
    }
}

/* mm_pack_panel_rows without AVX-512: two masked loads per row (the plain loop's memcpy call and
 * loop of zeros per row of the last panel took 2% of min-char-rnn's step on a Zen 3). */
MM_AVX2 static void mm_pack_panel_rows_avx2(int p, int K, int N, const float *B, ptrdiff_t rsb, float *Bp) {
    int j0 = p * MM_NR, nr = mm_min(MM_NR, N - j0);
    __m256i m0 = mm_first_lanes(nr), m1 = mm_first_lanes(nr - 8);
    const float *b = B + j0;
    float *dst = Bp + (size_t)p * K * MM_NR;
    for (int k = 0; k < K; k++) {
        _mm256_storeu_ps(dst + (size_t)k * MM_NR, _mm256_maskload_ps(b + k * rsb, m0));
        _mm256_storeu_ps(dst + (size_t)k * MM_NR + 8, _mm256_maskload_ps(b + k * rsb + 8, m1));
    }
}
#endif

/* How the panels of a B are packed: by the plain loop, or (float32, AVX2 or AVX-512, each at its
 * width) a masked load per row (read along rows, csb == 1), or by transposes in registers (the
 * transpose of a weight of contiguous rows: rsb == 1, csb > 1). */
enum { MM_PACK_PLAIN, MM_PACK_ROWS, MM_PACK_TRANSPOSED };

static int mm_pack_way(ptrdiff_t rsb, ptrdiff_t csb, const int half) {
    if (half || !mm_have_avx2()) return MM_PACK_PLAIN;
    return csb == 1 ? MM_PACK_ROWS : rsb == 1 ? MM_PACK_TRANSPOSED : MM_PACK_PLAIN;
}

/* Panel p, the way `way` says. */
static void mm_pack_one(int p, int K, int N, const void *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, const int half,
                        int way) {
#if MM_X86
    if (way == MM_PACK_TRANSPOSED) {
        if (mm_have_avx512()) mm_pack_panel_transposed(p, K, N, B, csb, Bp);
        else mm_pack_panel_transposed_avx2(p, K, N, B, csb, Bp);
        return;
    }
    if (way == MM_PACK_ROWS) {
        if (mm_have_avx512()) mm_pack_panel_rows(p, K, N, B, rsb, Bp);
        else mm_pack_panel_rows_avx2(p, K, N, B, rsb, Bp);
        return;
    }
#else
    (void)way;
#endif
    mm_pack_panel(p, K, N, B, rsb, csb, Bp, half);
}

static void mm_pack_with(int K, int N, const void *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nthreads,
                         const int half) {
    if (K <= 0 || N <= 0) return;
    int way = mm_pack_way(rsb, csb, half);
    SHARED_FOR(resolve_threads(nthreads), p, mm_cdiv(N, MM_NR), mm_pack_one(p, K, N, B, rsb, csb, Bp, half, way););
}

void mm_pack(int K, int N, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nthreads) {
    mm_pack_with(K, N, B, rsb, csb, Bp, nthreads, 0);
}

void mm_pack_bf16(int K, int N, const uint16_t *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nthreads) {
    mm_pack_with(K, N, B, rsb, csb, Bp, nthreads, 1);
}

/* A (mc, kc), from the block's corner, into micro-panels of MR rows (the kind's tile height):
 *   Ap[(r / MR) MR kc + MR k + r % MR] = A(r, k).
 * Only for A that is not row-major (a row-major A is read in place); for the transposed A of a
 * weight gradient (rsa = 1) the MR floats of one k are contiguous. A last micro-panel with fewer
 * than MR rows keeps the stride MR; its unused slots are never read. */
static void mm_pack_a(int MR, int mc, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa, float *Ap) {
    for (int r0 = 0; r0 < mc; r0 += MR) {
        int mr = mm_min(MR, mc - r0);
        const float *a = A + r0 * rsa;
        float *d = Ap + (size_t)r0 * kc;
        /* rsa = 1: copies of constant size, inlined (a call of memcpy per k took 2% of min-char-rnn's
         * step) */
        if (rsa == 1 && mr == MR && MR == MM_MR_MAX) {
            for (int k = 0; k < kc; k++) memcpy(d + k * MM_MR_MAX, a + k * csa, MM_MR_MAX * sizeof(float));
        } else if (rsa == 1 && mr == MR && MR == MM_MR) {
            for (int k = 0; k < kc; k++) memcpy(d + k * MM_MR, a + k * csa, MM_MR * sizeof(float));
        } else {
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < mr; r++) d[k * MR + r] = a[r * rsa + k * csa];
        }
    }
}

/* ----------------------------------------------------------------------------------------------
 * Micro-kernels. One tile of mr rows and np panels of 16 columns:
 *   s (mr, 16 np) = A (mr, kc) . [Bs, Bs + bstep, ...] (kc, 16 each)
 * with A(r, k) = A[r rsa + k csa] (in place: rsa = lda, csa = 1; packed: rsa = 1, csa = the tile
 * height) and Bs a sliver of a packed panel, the next panel's bstep floats further. Then by mode:
 * C = s (MM_STORE), C = C + s (MM_ADD), or s starts from C instead of 0 and C = s (MM_CONTINUE).
 * All 16 np columns of C are written (row stride ldc), or by a masked kernel only the first `last`
 * of the last panel (mm_kind). Every kernel computes each element as the
 * same chain of fused (AVX2, AVX-512) or separate (portable) multiply-adds in k order. */

typedef void (*mm_kernel)(int mr, int np, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *Bs, ptrdiff_t bstep, float *C, ptrdiff_t ldc, int mode, int last);

/* A kernel and the tiles it takes: up to mr rows; a tile of r rows up to np[r] panels. A masked
 * kernel writes only the first `last` (1..16) columns of its last panel; the others take last = 16
 * and whole panels only. */
typedef struct {
    mm_kernel fn;
    int mr;
    int np[MM_MR_MAX + 1];
    int masked;
} mm_kind;

/* Portable C, one body for every mr (a constant after inlining, as for AVX2 below), one half of
 * the tile at a time so that its 6x8 sums fit in the 16 registers of SSE2. */
static MM_INLINE void mm_tile_portable(const int mr, int kc, const float *A, ptrdiff_t rsa,
                                       ptrdiff_t csa, const float *Bs, float *C, ptrdiff_t ldc,
                                       int mode) {
    for (int h = 0; h < MM_NR; h += 8) {
        float s[MM_MR][8];
        #pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < 8; j++) s[r][j] = mode == MM_CONTINUE ? C[r * ldc + h + j] : 0.0f;
        for (int k = 0; k < kc; k++) {
            const float *b = Bs + k * MM_NR + h;
            #pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                float a = A[r * rsa + k * csa];
                for (int j = 0; j < 8; j++) s[r][j] += a * b[j];
            }
        }
        #pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < 8; j++)
                C[r * ldc + h + j] = mode == MM_ADD ? C[r * ldc + h + j] + s[r][j] : s[r][j];
    }
}

static void mm_kernel_portable(int mr, int np, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                               const float *Bs, ptrdiff_t bstep, float *C, ptrdiff_t ldc, int mode, int last) {
    (void)np, (void)bstep, (void)last;   /* one whole panel */
    switch (mr) {
    case 6: mm_tile_portable(6, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    case 5: mm_tile_portable(5, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    case 4: mm_tile_portable(4, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    case 3: mm_tile_portable(3, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    case 2: mm_tile_portable(2, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    default: mm_tile_portable(1, kc, A, rsa, csa, Bs, C, ldc, mode); break;
    }
}

#if MM_X86
/* AVX2+FMA, one body for every mr: mr is a constant after inlining, so the r loops unroll and the
 * 2 mr accumulators stay in registers (12 of the 16 ymm registers for mr = 6). cut (1, or 2 when
 * last <= 8, whose tile skips the last half panel): the last panel has only `last` columns of C,
 * which masked loads and stores keep to (a tile cut by C's right edge needs no copy). Packed
 * panels are stored 16 columns wide, so B's loads need no mask; the lanes past `last` are never
 * stored. */
MM_AVX2 static MM_INLINE void mm_tile_avx2(const int mr, const int np, const int cut, int kc, const float *A,
                                           ptrdiff_t rsa, ptrdiff_t csa, const float *Bs, ptrdiff_t bstep,
                                           float *C, ptrdiff_t ldc, int mode, int last) {
    __m256 c[MM_MR][2 * MM_NP_AVX2];   /* row r of the tile: columns 8h..8h+7 in c[r][h] */
    __m256i edge[2] = {mm_first_lanes(last), mm_first_lanes(last - 8)};   /* the last panel's halves */
    const int nh = 2 * np - (cut == 2);   /* halves computed */
    #define MM_CUT(h) (cut && (h) >= 2 * np - 2)
    #pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int h = 0; h < nh; h++)
            c[r][h] = mode != MM_CONTINUE ? _mm256_setzero_ps()
                      : MM_CUT(h) ? _mm256_maskload_ps(C + r * ldc + 8 * h, edge[h % 2])
                                  : _mm256_loadu_ps(C + r * ldc + 8 * h);
    const float *ak = A;           /* column k of A */
    for (int k = 0; k < kc; k++, ak += csa) {
        __m256 b[2 * MM_NP_AVX2];
        #pragma GCC unroll 8
        for (int h = 0; h < nh; h++) b[h] = _mm256_loadu_ps(Bs + (h / 2) * bstep + k * MM_NR + 8 * (h % 2));
        #pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(ak + r * rsa);
            #pragma GCC unroll 8
            for (int h = 0; h < nh; h++) c[r][h] = _mm256_fmadd_ps(a, b[h], c[r][h]);
        }
    }
    #pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int h = 0; h < nh; h++) {
            float *ch = C + r * ldc + 8 * h;
            if (MM_CUT(h)) {
                if (mode == MM_ADD) c[r][h] = _mm256_add_ps(_mm256_maskload_ps(ch, edge[h % 2]), c[r][h]);
                _mm256_maskstore_ps(ch, edge[h % 2], c[r][h]);
            } else {
                if (mode == MM_ADD) c[r][h] = _mm256_add_ps(_mm256_loadu_ps(ch), c[r][h]);
                _mm256_storeu_ps(ch, c[r][h]);
            }
        }
    #undef MM_CUT
}

/* A tile of mr rows by np panels (np <= MM_AVX2_KIND.np[mr]), the last one cut to `last` columns:
 * the rows of a batch in 6s, one panel each; a short tile wider, so that its chains of
 * multiply-adds do not wait on the FMA's latency at every k (one row alone had 2 chains: the
 * backward recurrence of one stream ran at a quarter of the FMA units' rate). Whole panels take
 * the unmasked body. */
#define MM_T2(mr, np) (last == MM_NR ? mm_tile_avx2(mr, np, 0, kc, A, rsa, csa, Bs, bstep, C, ldc, mode, last) \
                       : last > 8 ? mm_tile_avx2(mr, np, 1, kc, A, rsa, csa, Bs, bstep, C, ldc, mode, last) \
                                  : mm_tile_avx2(mr, np, 2, kc, A, rsa, csa, Bs, bstep, C, ldc, mode, last))
MM_AVX2 static void mm_kernel_avx2(int mr, int np, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                                   const float *Bs, ptrdiff_t bstep, float *C, ptrdiff_t ldc, int mode,
                                   int last) {
    switch (mr * 8 + np) {
    case 6 * 8 + 1: MM_T2(6, 1); break;
    case 5 * 8 + 1: MM_T2(5, 1); break;
    case 4 * 8 + 1: MM_T2(4, 1); break;
    case 3 * 8 + 1: MM_T2(3, 1); break;
    case 2 * 8 + 1: MM_T2(2, 1); break;
    case 2 * 8 + 2: MM_T2(2, 2); break;
    case 1 * 8 + 1: MM_T2(1, 1); break;
    case 1 * 8 + 2: MM_T2(1, 2); break;
    case 1 * 8 + 3: MM_T2(1, 3); break;
    default: MM_T2(1, 4); break;
    }
}
#undef MM_T2

/* AVX-512: up to 8 rows x 2 panels (32 columns), 16 zmm sums of the 32 registers; per k, 2 loads
 * of B and 8 broadcasts of A for 16 multiply-adds of 16 lanes. 8 rows tile the 32 streams of a
 * batch exactly (6 leave a tile of 2). A short tile is wider (MM_AVX512_KIND): one row alone would
 * leave 2 sums, whose chains of multiply-adds wait on the 4-cycle latency at every k; 8 panels keep
 * both FMA units busy (the backward recurrence of one stream, a batch's last rows). Masked loads
 * and stores keep to the `last` columns of the last panel, so a tile cut by C's right edge needs no
 * copy. The same fused chain per element as AVX2: the same bits. */
MM_AVX512 static MM_INLINE void mm_tile_avx512(const int mr, const int np, int kc, const float *A, ptrdiff_t rsa,
                                               ptrdiff_t csa, const float *Bs, ptrdiff_t bstep, float *C,
                                               ptrdiff_t ldc, int mode, int last) {
    __m512 c[MM_MR_MAX][MM_NP_MAX];
    __mmask16 edge = (__mmask16)((1u << last) - 1u);
    #pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int p = 0; p < np; p++)
            c[r][p] = mode == MM_CONTINUE ? _mm512_maskz_loadu_ps(p == np - 1 ? edge : 0xFFFF, C + r * ldc + 16 * p)
                                          : _mm512_setzero_ps();
    const float *ak = A;
    for (int k = 0; k < kc; k++, ak += csa) {
        __m512 b[MM_NP_MAX];
        #pragma GCC unroll 8
        for (int p = 0; p < np; p++) b[p] = _mm512_loadu_ps(Bs + p * bstep + k * MM_NR);
        #pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(ak[r * rsa]);
            #pragma GCC unroll 8
            for (int p = 0; p < np; p++) c[r][p] = _mm512_fmadd_ps(a, b[p], c[r][p]);
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int p = 0; p < np; p++) {
            float *cp = C + r * ldc + 16 * p;
            __mmask16 m = p == np - 1 ? edge : 0xFFFF;
            _mm512_mask_storeu_ps(cp, m, mode == MM_ADD ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, cp), c[r][p]) : c[r][p]);
        }
}

#define MM_T512(mr, np) mm_tile_avx512(mr, np, kc, A, rsa, csa, Bs, bstep, C, ldc, mode, last)
#define MM_NP2(mr) (np == 2 ? MM_T512(mr, 2) : MM_T512(mr, 1))
#define MM_NP4(mr) (np == 4 ? MM_T512(mr, 4) : np == 3 ? MM_T512(mr, 3) : MM_NP2(mr))
#define MM_NP8(mr) (np == 8 ? MM_T512(mr, 8) : np == 7 ? MM_T512(mr, 7) : np == 6 ? MM_T512(mr, 6) \
                    : np == 5 ? MM_T512(mr, 5) : MM_NP4(mr))

MM_AVX512 static void mm_kernel_avx512(int mr, int np, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                                       const float *Bs, ptrdiff_t bstep, float *C, ptrdiff_t ldc, int mode,
                                       int last) {
    switch (mr) {   /* np <= MM_AVX512_KIND.np[mr] */
    case 8: MM_NP2(8); break;
    case 7: MM_NP2(7); break;
    case 6: MM_NP2(6); break;
    case 5: MM_NP2(5); break;
    case 4: MM_NP2(4); break;
    case 3: MM_NP4(3); break;
    case 2: MM_NP4(2); break;
    default: MM_NP8(1); break;
    }
}
#endif

/* ----------------------------------------------------------------------------------------------
 * The blocked product. */

/* Tiles of mr rows at c = C(r, 0) for columns [j0, j1) of C, as wide as the kind takes them. Bs
 * is the packed B at (row k0, column 0); A is read as in mm_block. */
static void mm_row_tiles(const mm_kind *kind, int mr, int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                         const float *Bs, ptrdiff_t bstep, float *c, ptrdiff_t ldc, int j0, int j1, int mode) {
    float edge[MM_MR_MAX * MM_NR];   /* a tile cut by the right edge of C, for an unmasked kernel (plain C) */
    for (int j = j0; j < j1;) {
        const float *bs = Bs + (size_t)(j / MM_NR) * bstep;
        int n = mm_min(kind->np[mr] * MM_NR, j1 - j), whole = n / MM_NR;
        if (kind->masked || whole > 0) {   /* masked: the cut panel too */
            int np = kind->masked ? mm_cdiv(n, MM_NR) : whole;
            kind->fn(mr, np, kc, a, rsa, csa, bs, bstep, c + j, ldc, mode, kind->masked ? n - (np - 1) * MM_NR : MM_NR);
            j += kind->masked ? n : whole * MM_NR;
            continue;
        }
        /* the packed B is zero past N: compute 16 columns, keep n */
        for (int ii = 0; ii < mr; ii++)
            for (int jj = 0; jj < MM_NR; jj++)
                edge[ii * MM_NR + jj] = jj < n && mode != MM_STORE ? c[ii * ldc + j + jj] : 0.0f;
        kind->fn(mr, 1, kc, a, rsa, csa, bs, bstep, edge, MM_NR, mode, MM_NR);
        for (int ii = 0; ii < mr; ii++)
            memcpy(c + ii * ldc + j, edge + ii * MM_NR, (size_t)n * sizeof(float));
        j += n;
    }
}

/* Rows [ib, ib + mc) x columns [j0, j1) of C for the k-block [k0, k0 + kc); A points at A(ib, k0)
 * and is read as X(r, k) = A[r rsa + k csa], with micro-panels apanel floats apart. The B sliver of
 * a pass over some columns stays in L1 while every whole tile of rows uses it; the last tile, if
 * shorter, then goes along all the columns in wider passes. */
static void mm_block(const mm_kind *kind, int mc, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                     ptrdiff_t apanel, const float *Bp, int K, int k0, float *C, ptrdiff_t ldc,
                     int j0, int j1, int mode) {
    ptrdiff_t bstep = (ptrdiff_t)MM_NR * K;   /* from one packed panel to the next */
    const float *Bs = Bp + (size_t)k0 * MM_NR;   /* panel 0, row k0 */
    int whole = mc - mc % kind->mr, width = kind->np[kind->mr] * MM_NR;
    for (int j = j0; j < j1; j += width)
        for (int r = 0; r < whole; r += kind->mr)
            mm_row_tiles(kind, kind->mr, kc, A + (r / kind->mr) * apanel, rsa, csa, Bs, bstep, C + r * ldc, ldc,
                         j, mm_min(j + width, j1), mode);
    if (whole < mc)
        mm_row_tiles(kind, mc - whole, kc, A + (whole / kind->mr) * apanel, rsa, csa, Bs, bstep,
                     C + whole * ldc, ldc, j0, j1, mode);
}

/* One task: rows [i0, i1) and columns [j0, j1) of C (j0 a multiple of 16), over all of K. */
static void mm_task(const mm_kind *kind, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const float *Bp, float *C, ptrdiff_t ldc, int accumulate,
                    int i0, int i1, int j0, int j1) {
    _Alignas(64) float Ap[MM_MC_PACKED * MM_MR_MAX * MM_KC];   /* a block of A, when it must be packed */
    if (K == 0) {                                  /* empty sum: C = 0, or C as it was */
        if (!accumulate)
            for (int i = i0; i < i1; i++)
                memset(C + i * ldc + j0, 0, (size_t)(j1 - j0) * sizeof(float));
        return;
    }
    int in_place = csa == 1;
    int mcmax = in_place ? MM_MC : MM_MC_PACKED * kind->mr;
    int nkb = mm_cdiv(K, MM_KC);
    for (int b = 0; b < nkb; b++) {
        int k0 = mm_kbound(K, nkb, b), kc = mm_kbound(K, nkb, b + 1) - k0;
        int mode = b > 0 ? MM_CONTINUE : accumulate ? MM_ADD : MM_STORE;
        for (int ib = i0; ib < i1; ib += mcmax) {
            int mc = mm_min(mcmax, i1 - ib);
            const float *a = A + ib * rsa + k0 * csa;
            float *c = C + ib * ldc;
            if (in_place) {
                mm_block(kind, mc, kc, a, rsa, 1, kind->mr * rsa, Bp, K, k0, c, ldc, j0, j1, mode);
            } else {
                mm_pack_a(kind->mr, mc, kc, a, rsa, csa, Ap);
                mm_block(kind, mc, kc, Ap, 1, kind->mr, (ptrdiff_t)kind->mr * kc, Bp, K, k0, c, ldc, j0, j1, mode);
            }
        }
    }
}

static int mm_gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }

/* Tasks: column chunks x row groups, numbered chunk-major so that a thread's consecutive tasks
 * share their B block. Their number is a multiple of the thread count when the shape allows, so
 * that static scheduling gives every thread the same work. (The split changes speed only.)
 * With one thread, no parallel region at all (SHARED_FOR): the recurrence of an RNN makes small
 * products at every time step. */
static void mm_packed_with(const mm_kind *kind, int M, int N, int K, const float *A, ptrdiff_t rsa,
                           ptrdiff_t csa, const float *Bp, float *C, ptrdiff_t ldc,
                           int accumulate, int nthreads) {
    if (M <= 0 || N <= 0) return;
    int nt = resolve_threads(nthreads);
    int npanels = mm_cdiv(N, MM_NR), ncol = mm_cdiv(npanels, MM_NC / MM_NR), nrow = 1;
    if (ncol >= nt) ncol = mm_min(npanels, mm_cdiv(ncol, nt) * nt);
    else nrow = nt / mm_gcd(ncol, nt);
    int cols = mm_cdiv(npanels, ncol) * MM_NR;                  /* whole panels */
    int rows = mm_cdiv(mm_cdiv(M, nrow), kind->mr) * kind->mr;  /* whole micro-tiles */
    ncol = mm_cdiv(N, cols);
    nrow = mm_cdiv(M, rows);
    SHARED_FOR(nt, t, ncol * nrow,
        int i = (t % nrow) * rows, j = (t / nrow) * cols;
        mm_task(kind, K, A, rsa, csa, Bp, C, ldc, accumulate, i, mm_min(i + rows, M), j, mm_min(j + cols, N));
    );
}

static const mm_kind MM_PORTABLE = {mm_kernel_portable, MM_MR, {0, 1, 1, 1, 1, 1, 1}, 0};
#if MM_X86
static const mm_kind MM_AVX2_KIND = {mm_kernel_avx2, MM_MR, {0, MM_NP_AVX2, 2, 1, 1, 1, 1}, 1};
static const mm_kind MM_AVX512_KIND = {mm_kernel_avx512, MM_MR_MAX, {0, 8, 4, 4, 2, 2, 2, 2, 2}, 1};
#endif

int mm_have_avx512(void) {
#if MM_X86
    return mm_have_avx2() && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}


static const mm_kind *mm_best_kernel(void) {
#if MM_X86
    if (mm_have_avx512()) return &MM_AVX512_KIND;
    if (mm_have_avx2()) return &MM_AVX2_KIND;
#endif
    return &MM_PORTABLE;
}

void mm_packed(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *Bp,
               float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_packed_with(mm_best_kernel(), M, N, K, A, rsa, csa, Bp, C, ldc, accumulate, nthreads);
}

void mm_packed_portable(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                        const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_packed_with(&MM_PORTABLE, M, N, K, A, rsa, csa, Bp, C, ldc, accumulate, nthreads);
}

void mm_packed_avx2(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
#if MM_X86
    mm_packed_with(&MM_AVX2_KIND, M, N, K, A, rsa, csa, Bp, C, ldc, accumulate, nthreads);
#else
    mm_packed_portable(M, N, K, A, rsa, csa, Bp, C, ldc, accumulate, nthreads);
#endif
}

void mm_packed_cols(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int j0, int j1) {
    if (j1 > N) j1 = N;
    if (M <= 0 || j0 < 0 || j0 >= j1) return;
    const mm_kind *kind = mm_best_kernel();
    for (int j = j0; j < j1; j += MM_NC)
        mm_task(kind, K, A, rsa, csa, Bp, C, ldc, accumulate, 0, M, j, mm_min(j + MM_NC, j1));
}

/* ----------------------------------------------------------------------------------------------
 * mm_nt: C(i, j) = [C(i, j) +] dot(row i of A, row j of W).
 *
 * Order of operations of one dot product, the same in every grouping below: 8 lanes, lane l sums
 * a_k w_k over k = l, l + 8, l + 16, ... in order (a last partial group of 8 reads zeros past K),
 * then the lanes are added as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). The AVX2 kernel
 * fuses each lane's multiply-add; the portable one rounds the product first.
 *
 * Threads split the rows of W (columns of C) in groups of NT_W rows; each group meets every row
 * of A while it is in L1, so W streams from memory once. */

#define NT_W 16      /* rows of W per group: 16 independent chains when M = 1 */
#define NT_A 12      /* rows of A per call of a group kernel: 4 AVX2 tiles of 3, 3 AVX-512 tiles of 4 */

/* W is float32, or bfloat16 (half) widened exactly as it is read: the same sums either way. W
 * and ldw count elements of W's type. */
typedef void (*nt_kernel)(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                          ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate);

static MM_INLINE float nt_w(const void *W, ptrdiff_t i, const int half) {
    return half ? bf16_to_float(((const uint16_t *)W)[i]) : ((const float *)W)[i];
}

static MM_INLINE void nt_group_portable_with(int ma, int nw, int K, const float *A, ptrdiff_t lda,
                                             const void *W, ptrdiff_t ldw, float *C, ptrdiff_t ldc,
                                             int accumulate, const int half) {
    for (int i = 0; i < ma; i++)
        for (int j = 0; j < nw; j++) {
            const float *a = A + i * lda;
            ptrdiff_t w = j * ldw;
            float l[8] = {0};
            int k = 0;
            for (; k + 8 <= K; k += 8)
                for (int q = 0; q < 8; q++) l[q] += a[k + q] * nt_w(W, w + k + q, half);
            for (int q = 0; q < 8 && k < K; q++) l[q] += k + q < K ? a[k + q] * nt_w(W, w + k + q, half) : 0.0f;
            float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + d : d;
        }
}

/* W advanced by i elements of its type */
static MM_INLINE const void *nt_at(const void *W, ptrdiff_t i, const int half) {
    return half ? (const void *)((const uint16_t *)W + i) : (const void *)((const float *)W + i);
}

static void nt_group_portable(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                              ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    nt_group_portable_with(ma, nw, K, A, lda, W, ldw, C, ldc, accumulate, 0);
}

static void nt_group_portable_bf16(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                                   ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    nt_group_portable_with(ma, nw, K, A, lda, W, ldw, C, ldc, accumulate, 1);
}

#if MM_X86
MM_AVX2 static inline float nt_sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* l, l + 4 */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          /* 0+2, 1+3 */
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* nt_sum8 of s[0..7] (s[0..3]) side by side, the same sums in the same order: first lane l + lane
 * l + 4 of each, then (those of lanes 0 and 2) + (those of 1 and 3), then the two. A third of the
 * instructions of 8 (4) nt_sum8's: one row of A ran 100 of them per 10,000 multiply-adds at H = 100. */
/* The three steps, each on two registers. [a b c d of u | a b c d of v], with a = l0 + l4,
 * b = l1 + l5, c = l2 + l6, d = l3 + l7 of each: */
MM_AVX2 static MM_INLINE __m256 nt_lanes_halved(__m256 u, __m256 v) {
    return _mm256_add_ps(_mm256_permute2f128_ps(u, v, 0x20), _mm256_permute2f128_ps(u, v, 0x31));
}

/* of x = [a b c d of s | of t] and y = [of u | of v]: [a+c b+d of s, of u | of t, of v] */
MM_AVX2 static MM_INLINE __m256 nt_lanes_quartered(__m256 x, __m256 y) {
    return _mm256_add_ps(_mm256_shuffle_ps(x, y, 0x44), _mm256_shuffle_ps(x, y, 0xEE));
}

/* of x = [p q of s, of t | ...] and y = [of u, of v | ...]: [p+q of s, t, u, v | ...] */
MM_AVX2 static MM_INLINE __m256 nt_lanes_summed(__m256 x, __m256 y) {
    return _mm256_add_ps(_mm256_shuffle_ps(x, y, 0x88), _mm256_shuffle_ps(x, y, 0xDD));
}

MM_AVX2 static MM_INLINE __m256 nt_sums8(const __m256 *s) {
    __m256 y01 = nt_lanes_quartered(nt_lanes_halved(s[0], s[4]), nt_lanes_halved(s[1], s[5]));
    __m256 y23 = nt_lanes_quartered(nt_lanes_halved(s[2], s[6]), nt_lanes_halved(s[3], s[7]));
    return nt_lanes_summed(y01, y23);   /* [s0 s1 s2 s3 | s4 s5 s6 s7] */
}

MM_AVX2 static MM_INLINE __m128 nt_sums4(const __m256 *s) {
    __m256 y = nt_lanes_quartered(nt_lanes_halved(s[0], s[2]), nt_lanes_halved(s[1], s[3]));
    __m256 d = nt_lanes_summed(y, y);   /* [s0 s1 s0 s1 | s2 s3 s2 s3] */
    return _mm_movelh_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

/* 8 elements of W from element i, as floats; n < 8: only n, the lanes past them 0. */
MM_AVX2 static MM_INLINE __m256 nt_load_avx2(const void *W, ptrdiff_t i, int n, const int half) {
    if (!half) {
        if (n == 8) return _mm256_loadu_ps((const float *)W + i);
        __m256i m = mm_first_lanes(n);
        return _mm256_maskload_ps((const float *)W + i, m);
    }
    __m128i h;
    if (n == 8) {
        h = _mm_loadu_si128((const __m128i *)((const uint16_t *)W + i));
    } else {
        uint16_t part[8] = {0};
        memcpy(part, (const uint16_t *)W + i, (size_t)n * sizeof(uint16_t));
        h = _mm_loadu_si128((const __m128i *)part);
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* MA rows of A against NW rows of W: MA NW accumulators of 8 lanes, each W load used MA times. */
MM_AVX2 static MM_INLINE void nt_tile_avx2(const int MA, const int NW, int K, const float *A,
                                           ptrdiff_t lda, const void *W, ptrdiff_t ldw, float *C,
                                           ptrdiff_t ldc, int accumulate, const int half) {
    __m256 s[3][8], a[3];
    #pragma GCC unroll 8
    for (int i = 0; i < MA; i++)
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) s[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        #pragma GCC unroll 8
        for (int i = 0; i < MA; i++) a[i] = _mm256_loadu_ps(A + i * lda + k);
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) {
            __m256 w = nt_load_avx2(W, j * ldw + k, 8, half);
            #pragma GCC unroll 8
            for (int i = 0; i < MA; i++) s[i][j] = _mm256_fmadd_ps(a[i], w, s[i][j]);
        }
    }
    if (k < K) {                   /* the last K % 8: lanes past K load 0 */
        __m256i m = mm_first_lanes(K - k);
        #pragma GCC unroll 8
        for (int i = 0; i < MA; i++) a[i] = _mm256_maskload_ps(A + i * lda + k, m);
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) {
            __m256 w = nt_load_avx2(W, j * ldw + k, K - k, half);
            #pragma GCC unroll 8
            for (int i = 0; i < MA; i++) s[i][j] = _mm256_fmadd_ps(a[i], w, s[i][j]);
        }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MA; i++) {
        float *c = C + i * ldc;
        if (NW == 8) {
            __m256 d = nt_sums8(s[i]);
            _mm256_storeu_ps(c, accumulate ? _mm256_add_ps(_mm256_loadu_ps(c), d) : d);
        } else if (NW == 4) {
            __m128 d = nt_sums4(s[i]);
            _mm_storeu_ps(c, accumulate ? _mm_add_ps(_mm_loadu_ps(c), d) : d);
        } else {
            #pragma GCC unroll 8
            for (int j = 0; j < NW; j++) {
                float d = nt_sum8(s[i][j]);
                c[j] = accumulate ? c[j] + d : d;
            }
        }
    }
}

/* Tiles of 3 rows of A x 4 rows of W (12 chains in 16 registers, each W load used three times),
 * then of 2 x 4; one row of A x 8 rows of W; the leftover rows of W one at a time, or for one row
 * of A all together. 2 x 4 tiles alone (8 chains) waited on the FMA's latency: 32 x 2048 x 512 ran
 * at 47 GFLOP/s on a Zen 3 core, 81 in tiles of 3. (4 x 4 tiles in the 32 ymm registers of
 * AVX-512VL ran 15% slower than 2 x 4 at 32 x 2048 x 512 on Zen 4.) */
MM_AVX2 static MM_INLINE void nt_group_avx2_with(int ma, int nw, int K, const float *A, ptrdiff_t lda,
                                                 const void *W, ptrdiff_t ldw, float *C, ptrdiff_t ldc,
                                                 int accumulate, const int half) {
    int triples = ma / 3 * 3, paired = triples + ((ma - triples) & ~1), j = 0;
    for (; j + 4 <= nw; j += 4) {  /* 4 rows of W (8 KB at K = 512) for every 3 or 2 rows of A: from L1 */
        int i = 0;
        for (; i < triples; i += 3)
            nt_tile_avx2(3, 4, K, A + i * lda, lda, nt_at(W, j * ldw, half), ldw, C + i * ldc + j, ldc, accumulate, half);
        for (; i < paired; i += 2)
            nt_tile_avx2(2, 4, K, A + i * lda, lda, nt_at(W, j * ldw, half), ldw, C + i * ldc + j, ldc, accumulate, half);
    }
    for (; j < nw; j++) {
        int i = 0;
        for (; i < triples; i += 3)
            nt_tile_avx2(3, 1, K, A + i * lda, lda, nt_at(W, j * ldw, half), ldw, C + i * ldc + j, ldc, accumulate, half);
        for (; i < paired; i += 2)
            nt_tile_avx2(2, 1, K, A + i * lda, lda, nt_at(W, j * ldw, half), ldw, C + i * ldc + j, ldc, accumulate, half);
    }
    for (int i = paired; i < ma; i++) {
        const float *a = A + i * lda;
        float *c = C + i * ldc;
        int j = 0;
        for (; j + 8 <= nw; j += 8)
            nt_tile_avx2(1, 8, K, a, lda, nt_at(W, j * ldw, half), ldw, c + j, ldc, accumulate, half);
        const void *w = nt_at(W, j * ldw, half);
        switch (nw - j) {   /* the last rows of W: their chains side by side */
        case 7: nt_tile_avx2(1, 7, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 6: nt_tile_avx2(1, 6, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 5: nt_tile_avx2(1, 5, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 4: nt_tile_avx2(1, 4, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 3: nt_tile_avx2(1, 3, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 2: nt_tile_avx2(1, 2, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        case 1: nt_tile_avx2(1, 1, K, a, lda, w, ldw, c + j, ldc, accumulate, half); break;
        default: break;
        }
    }
}

MM_AVX2 static void nt_group_avx2(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                                  ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    nt_group_avx2_with(ma, nw, K, A, lda, W, ldw, C, ldc, accumulate, 0);
}

MM_AVX2 static void nt_group_avx2_bf16(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                                       ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    nt_group_avx2_with(ma, nw, K, A, lda, W, ldw, C, ldc, accumulate, 1);
}

/* AVX-512: two chains in one register, the 8 lanes of a row of A in each half (a pair of rows,
 * 2 x 8 lanes) against a row of W in both halves, so that each lane of each chain does what the
 * AVX2 kernel's does, multiply-add for multiply-add, and each half reduces as nt_sum8 does: the
 * same bits as nt_group_avx2 (test_gemm checks it), twice the lanes per instruction. P pairs of
 * rows x 8 rows of W: 16 P chains in 8 P registers. */
#define MM_AVX512NT __attribute__((target("avx2,fma,avx512f")))

MM_AVX512NT static MM_INLINE __m512 nt_pair_avx512(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

/* The 8 sums of 8 chains of both rows of a pair at once: v[j] holds chain j of row 2p in its low
 * half and of row 2p + 1 in its high half; the result, row 2p's 8 sums then row 2p + 1's. Each
 * chain is added up as nt_sum8 adds it (the same pairs; a + b and b + a are the same float): the
 * same bits as the AVX2 kernel, with the lanes of two chains paired by one permute each time. */
MM_AVX512NT static MM_INLINE __m512 nt_sum8x8_pair(const __m512 *v) {
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i second = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    __m512 u[4], w[2];
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++)    /* per half: [l0+l4, l1+l5, l2+l6, l3+l7] of chains 2i and 2i+1 */
        u[i] = _mm512_add_ps(_mm512_permutex2var_ps(v[2 * i], first, v[2 * i + 1]),
                             _mm512_permutex2var_ps(v[2 * i], second, v[2 * i + 1]));
    #pragma GCC unroll 2
    for (int i = 0; i < 2; i++)    /* (l0+l4)+(l2+l6), (l1+l5)+(l3+l7) of chains 4i..4i+3 */
        w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 t = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));   /* per half 0 2 4 6 1 3 5 7 */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), t);
}

MM_AVX512NT static MM_INLINE void nt_tile_avx512(const int P, int K, const float *A, ptrdiff_t lda, const float *W,
                                                 ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    __m512 s[2][8], a[2];
    #pragma GCC unroll 8
    for (int p = 0; p < P; p++)
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) s[p][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        #pragma GCC unroll 8
        for (int p = 0; p < P; p++)
            a[p] = nt_pair_avx512(_mm256_loadu_ps(A + 2 * p * lda + k), _mm256_loadu_ps(A + (2 * p + 1) * lda + k));
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512 w = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(W + j * ldw + k))));
            #pragma GCC unroll 8
            for (int p = 0; p < P; p++) s[p][j] = _mm512_fmadd_ps(a[p], w, s[p][j]);
        }
    }
    if (k < K) {                   /* the last K % 8: lanes past K load 0, as in nt_tile_avx2 */
        __m256i m = mm_first_lanes(K - k);
        #pragma GCC unroll 8
        for (int p = 0; p < P; p++)
            a[p] = nt_pair_avx512(_mm256_maskload_ps(A + 2 * p * lda + k, m),
                                  _mm256_maskload_ps(A + (2 * p + 1) * lda + k, m));
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256 w8 = _mm256_maskload_ps(W + j * ldw + k, m);
            __m512 w = nt_pair_avx512(w8, w8);
            #pragma GCC unroll 8
            for (int p = 0; p < P; p++) s[p][j] = _mm512_fmadd_ps(a[p], w, s[p][j]);
        }
    }
    #pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        float *c0 = C + 2 * p * ldc, *c1 = c0 + ldc;
        __m512 d = nt_sum8x8_pair(s[p]);
        if (accumulate) d = _mm512_add_ps(nt_pair_avx512(_mm256_loadu_ps(c0), _mm256_loadu_ps(c1)), d);
        _mm256_storeu_ps(c0, _mm512_castps512_ps256(d));
        _mm256_storeu_ps(c1, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
    }
}

/* One row of A against 16 rows of W (one step of one stream): the row's 8 lanes in both halves of
 * a register, against row j of W in the low half and row j + 8 in the high one; 16 chains in 8
 * registers, whose sums nt_sum8x8_pair gives in order. */
MM_AVX512NT static MM_INLINE void nt_row16_avx512(int K, const float *A, const float *W, ptrdiff_t ldw, float *C,
                                                  int accumulate) {
    __m512 s[8];
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++) s[j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 a8 = _mm256_loadu_ps(A + k);
        __m512 a = nt_pair_avx512(a8, a8);
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            s[j] = _mm512_fmadd_ps(a, nt_pair_avx512(_mm256_loadu_ps(W + j * ldw + k), _mm256_loadu_ps(W + (j + 8) * ldw + k)), s[j]);
    }
    if (k < K) {                   /* the last K % 8: lanes past K load 0, as in nt_tile_avx2 */
        __m256i m = mm_first_lanes(K - k);
        __m256 a8 = _mm256_maskload_ps(A + k, m);
        __m512 a = nt_pair_avx512(a8, a8);
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            s[j] = _mm512_fmadd_ps(a, nt_pair_avx512(_mm256_maskload_ps(W + j * ldw + k, m),
                                                     _mm256_maskload_ps(W + (j + 8) * ldw + k, m)), s[j]);
    }
    __m512 d = nt_sum8x8_pair(s);
    if (accumulate) d = _mm512_add_ps(_mm512_loadu_ps(C), d);
    _mm512_storeu_ps(C, d);
}

/* Rows of A in fours and pairs against each 8 rows of W; a last row of A 16 rows of W at a time;
 * what is left (the short end of a group) as nt_group_avx2 does it. float32 weights only. */
MM_AVX512NT static void nt_group_avx512(int ma, int nw, int K, const float *A, ptrdiff_t lda, const void *W,
                                        ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    const float *w = W;
    int paired = ma & ~1, eights = nw & ~7;
    for (int j = 0; j < eights; j += 8) {
        int i = 0;
        for (; i + 4 <= paired; i += 4) nt_tile_avx512(2, K, A + i * lda, lda, w + j * ldw, ldw, C + i * ldc + j, ldc, accumulate);
        for (; i < paired; i += 2) nt_tile_avx512(1, K, A + i * lda, lda, w + j * ldw, ldw, C + i * ldc + j, ldc, accumulate);
    }
    if (paired && eights < nw)
        nt_group_avx2_with(paired, nw - eights, K, A, lda, w + eights * ldw, ldw, C + eights, ldc, accumulate, 0);
    if (paired < ma) {
        const float *a = A + paired * lda;
        float *c = C + paired * ldc;
        int j = 0;
        for (; j + 16 <= nw; j += 16) nt_row16_avx512(K, a, w + j * ldw, ldw, c + j, accumulate);
        if (j < nw) nt_group_avx2_with(1, nw - j, K, a, lda, w + j * ldw, ldw, c + j, ldc, accumulate, 0);
    }
}

#endif

/* Group g of the rows of W (columns of C) against every row of A. */
static void nt_rows(nt_kernel kern, int half, int g, int M, int N, int K, const float *A, ptrdiff_t lda,
                    const void *W, ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate) {
    int j = g * NT_W, nw = mm_min(NT_W, N - j);
    for (int i = 0; i < M; i += NT_A)
        kern(mm_min(NT_A, M - i), nw, K, A + i * lda, lda, nt_at(W, j * ldw, half), ldw, C + i * ldc + j, ldc,
             accumulate);
}

static void mm_nt_with(nt_kernel kern, int half, int M, int N, int K, const float *A, ptrdiff_t lda,
                       const void *W, ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate,
                       int nthreads) {
    if (M <= 0 || N <= 0) return;
    SHARED_FOR(resolve_threads(nthreads), g, mm_cdiv(N, NT_W),
        nt_rows(kern, half, g, M, N, K, A, lda, W, ldw, C, ldc, accumulate);
    );
}

static nt_kernel nt_best_kernel(int half) {
#if MM_X86
    if (!half && mm_have_avx512()) return nt_group_avx512;
    if (mm_have_avx2()) return half ? nt_group_avx2_bf16 : nt_group_avx2;
#endif
    return half ? nt_group_portable_bf16 : nt_group_portable;
}

void mm_nt(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W, ptrdiff_t ldw,
           float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_with(nt_best_kernel(0), 0, M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
}

void mm_nt_bf16(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *W, ptrdiff_t ldw,
                float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_with(nt_best_kernel(1), 1, M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
}

void mm_nt_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W,
                    ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_with(nt_group_portable, 0, M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
}

void mm_nt_avx2(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W,
                ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
#if MM_X86
    mm_nt_with(nt_group_avx2, 0, M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
#else
    mm_nt_portable(M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
#endif
}

void mm_nt_bf16_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *W,
                         ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_with(nt_group_portable_bf16, 1, M, N, K, A, lda, W, ldw, C, ldc, accumulate, nthreads);
}

/* ----------------------------------------------------------------------------------------------
 * mm_nt_prepared: mm_nt's sums, with W prepared once (mm_prepare) for the steps of a few streams.
 * Unprepared, one row of A reads 8 rows of W at once, 8 runs of memory 1-4 KB long; prepared, W
 * is one run: group g holds rows [8g, 8g + 8) (rows past N zero), and within it the 8 elements
 * k..k + 7 of its 8 rows follow one another for k = 0, 8, ... up to K rounded up to 8 (zeros past
 * K), 64 elements a step of k. float32 puts the rows in order, 8 floats each. bfloat16 puts them
 * in pairs, rows 2i and 2i + 1 in the low and high halves of the same 8 32-bit lanes, so that one
 * load widens to both rows' floats exactly by a shift and an AND (rather than a widening shuffle
 * and a shift for every 8). Each row's sum is mm_nt's (the same lanes, the same order, zeros past
 * K as its masked loads give): the same bits for each of its kernels. Measured on a Zen 3 core,
 * one row of A against 1,024-6,144 x 256-512 weights in L3: float32 1.2-1.3 times as fast as
 * mm_nt, bfloat16 1.5-1.7 times mm_nt_bf16 (of which one run alone, with mm_nt_bf16's widening,
 * gave 1.3). Rows of 1,024 float32 (8-16 MB) ran 10-25% slower prepared: model.c leaves those. */

#define PREP_ROWS 8      /* rows of W in a group */

static size_t prep_k(int K) { return (size_t)mm_cdiv(K, 8) * 8; }

/* Bytes of a group of W's type (half: bfloat16). */
static size_t prep_group_bytes(int K, const int half) {
    return (size_t)PREP_ROWS * prep_k(K) * (half ? sizeof(uint16_t) : sizeof(float));
}

size_t mm_prepared_size(int N, int K) {
    if (N <= 0 || K <= 0) return 0;
    return (size_t)mm_cdiv(N, PREP_ROWS) * PREP_ROWS * prep_k(K);
}

/* Where element (j, k) of group row j (0..7) goes, from the start of its step of k. */
static MM_INLINE size_t prep_slot(int j, int q, const int half) {
    return half ? (size_t)(j / 2) * 16 + (size_t)q * 2 + (size_t)(j % 2) : (size_t)j * 8 + (size_t)q;
}

static MM_INLINE void mm_prepare_with(int N, int K, const void *W, ptrdiff_t ldw, void *P, const int half,
                                      int nthreads) {
    size_t KP = prep_k(K);
    SHARED_FOR(resolve_threads(nthreads), g, mm_cdiv(N, PREP_ROWS),
        for (size_t k = 0; k < KP; k += 8)
            for (int j = 0; j < PREP_ROWS; j++) {   /* 8 elements of row j (n of them in W, zeros after) */
                int row = g * PREP_ROWS + j, n = row < N && k < (size_t)K ? mm_min(8, K - (int)k) : 0;
                size_t at = (size_t)g * PREP_ROWS * KP + k * PREP_ROWS, from = (size_t)row * (size_t)ldw + k;
                for (int q = 0; q < 8; q++) {
                    if (half) ((uint16_t *)P)[at + prep_slot(j, q, 1)] = q < n ? ((const uint16_t *)W)[from + q] : 0;
                    else ((float *)P)[at + prep_slot(j, q, 0)] = q < n ? ((const float *)W)[from + q] : 0.0f;
                }
            }
    );
}

void mm_prepare(int N, int K, const float *W, ptrdiff_t ldw, float *P, int nthreads) {
    mm_prepare_with(N, K, W, ldw, P, 0, nthreads);
}

void mm_prepare_bf16(int N, int K, const uint16_t *W, ptrdiff_t ldw, uint16_t *P, int nthreads) {
    mm_prepare_with(N, K, W, ldw, P, 1, nthreads);
}

/* One row a of A against one group (n of its rows kept): nt_group_portable's arithmetic. */
static MM_INLINE void prep_group_portable(int K, const float *a, const void *P, float *c, int n, int accumulate,
                                          const int half) {
    float l[PREP_ROWS][8] = {{0}};
    for (int k = 0; k < K; k += 8) {
        size_t step = (size_t)k * PREP_ROWS;
        for (int j = 0; j < PREP_ROWS; j++)
            for (int q = 0; q < 8; q++) {
                size_t at = step + prep_slot(j, q, half);
                float w = half ? bf16_to_float(((const uint16_t *)P)[at]) : ((const float *)P)[at];
                l[j][q] += k + q < K ? a[k + q] * w : 0.0f;
            }
    }
    for (int j = 0; j < n; j++) {
        float *s = l[j], d = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
        c[j] = accumulate ? c[j] + d : d;
    }
}

#if MM_X86
/* One step of k (8 columns av of a row of A) into the 8 rows' chains s, from the step's 64 elements at p. */
MM_AVX2 static MM_INLINE void prep_step_avx2(__m256 av, const void *p, __m256 *s, const int half) {
    if (half) {
        const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
        #pragma GCC unroll 4
        for (int i = 0; i < PREP_ROWS / 2; i++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)p + i);
            s[2 * i] = _mm256_fmadd_ps(av, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)), s[2 * i]);
            s[2 * i + 1] = _mm256_fmadd_ps(av, _mm256_castsi256_ps(_mm256_and_si256(x, high)), s[2 * i + 1]);
        }
    } else {
        #pragma GCC unroll 8
        for (int j = 0; j < PREP_ROWS; j++) s[j] = _mm256_fmadd_ps(av, _mm256_loadu_ps((const float *)p + 8 * j), s[j]);
    }
}

/* The same with nt_tile_avx2's fused chains, 8 of them (one per row). */
MM_AVX2 static MM_INLINE void prep_group_avx2(int K, const float *a, const void *P, float *c, int n, int accumulate,
                                              const int half) {
    const size_t step = prep_group_bytes(8, half);   /* a step of k: 8 rows' 8 elements */
    __m256 s[PREP_ROWS];
    #pragma GCC unroll 8
    for (int j = 0; j < PREP_ROWS; j++) s[j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) prep_step_avx2(_mm256_loadu_ps(a + k), (const char *)P + k / 8 * step, s, half);
    if (k < K) {   /* the last K % 8: lanes past K load 0, as in nt_tile_avx2 (W holds zeros there) */
        __m256i m = mm_first_lanes(K - k);
        prep_step_avx2(_mm256_maskload_ps(a + k, m), (const char *)P + k / 8 * step, s, half);
    }
    for (int j = 0; j < n; j++) {
        float d = nt_sum8(s[j]);
        c[j] = accumulate ? c[j] + d : d;
    }
}
#endif

/* One row a of A against N rows of W from P's first group on: the groups one after another. */
typedef void (*prep_kernel)(int K, const float *a, const void *P, int N, float *c, int accumulate);

static MM_INLINE void prep_rows_portable(int K, const float *a, const void *P, int N, float *c, int accumulate,
                                         const int half) {
    size_t group = prep_group_bytes(K, half);
    for (int g = 0; g * PREP_ROWS < N; g++)
        prep_group_portable(K, a, (const char *)P + g * group, c + g * PREP_ROWS, mm_min(PREP_ROWS, N - g * PREP_ROWS),
                            accumulate, half);
}
static void prep_rows_portable_f32(int K, const float *a, const void *P, int N, float *c, int accumulate) {
    prep_rows_portable(K, a, P, N, c, accumulate, 0);
}
static void prep_rows_portable_bf16(int K, const float *a, const void *P, int N, float *c, int accumulate) {
    prep_rows_portable(K, a, P, N, c, accumulate, 1);
}
#if MM_X86
MM_AVX2 static MM_INLINE void prep_rows_avx2(int K, const float *a, const void *P, int N, float *c, int accumulate,
                                             const int half) {
    size_t group = prep_group_bytes(K, half);
    for (int g = 0; g * PREP_ROWS < N; g++)
        prep_group_avx2(K, a, (const char *)P + g * group, c + g * PREP_ROWS, mm_min(PREP_ROWS, N - g * PREP_ROWS),
                        accumulate, half);
}
MM_AVX2 static void prep_rows_avx2_f32(int K, const float *a, const void *P, int N, float *c, int accumulate) {
    prep_rows_avx2(K, a, P, N, c, accumulate, 0);
}
MM_AVX2 static void prep_rows_avx2_bf16(int K, const float *a, const void *P, int N, float *c, int accumulate) {
    prep_rows_avx2(K, a, P, N, c, accumulate, 1);
}
#endif

/* mm_nt's choice: fused chains where the CPU has AVX2 (its AVX-512 kernel gives the same bits) */
static prep_kernel prep_best_kernel(int half) {
#if MM_X86
    if (mm_have_avx2()) return half ? prep_rows_avx2_bf16 : prep_rows_avx2_f32;
#endif
    return half ? prep_rows_portable_bf16 : prep_rows_portable_f32;
}

/* Threads take contiguous ranges of groups, each row of A one kernel call over its range (which
 * reads each group from L1 for the second row on). */
static void mm_nt_prepared_with(prep_kernel kern, int M, int N, int K, const float *A, ptrdiff_t lda, const void *P,
                                float *C, ptrdiff_t ldc, int accumulate, int nthreads, int half) {
    if (M <= 0 || N <= 0) return;
    size_t group = prep_group_bytes(K, half);
    int threads = resolve_threads(nthreads), groups = mm_cdiv(N, PREP_ROWS), parts = mm_min(threads, groups);
    SHARED_FOR(threads, part, parts,
        int g0 = part_start(groups, part, parts), g1 = part_start(groups, part + 1, parts);
        int n = mm_min(N, g1 * PREP_ROWS) - g0 * PREP_ROWS;
        for (int i = 0; i < M; i++)
            kern(K, A + i * lda, (const char *)P + g0 * group, n, C + i * ldc + g0 * PREP_ROWS, accumulate);
    );
}

void mm_nt_prepared(int M, int N, int K, const float *A, ptrdiff_t lda, const float *P, float *C, ptrdiff_t ldc,
                    int accumulate, int nthreads) {
    mm_nt_prepared_with(prep_best_kernel(0), M, N, K, A, lda, P, C, ldc, accumulate, nthreads, 0);
}

void mm_nt_prepared_bf16(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *P, float *C,
                         ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_prepared_with(prep_best_kernel(1), M, N, K, A, lda, P, C, ldc, accumulate, nthreads, 1);
}

void mm_nt_prepared_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const void *P, int half, float *C,
                             ptrdiff_t ldc, int accumulate, int nthreads) {
    prep_kernel kern = half ? prep_rows_portable_bf16 : prep_rows_portable_f32;
    mm_nt_prepared_with(kern, M, N, K, A, lda, P, C, ldc, accumulate, nthreads, half);
}

/* ----------------------------------------------------------------------------------------------
 * mm_packed_nt_cols: mm_nt's sums from a packed B = W^T. A register per lane of mm_nt's 8, each
 * holding 16 columns of a panel: lane l of column j is the chain over k = l, l + 8, ... as in
 * mm_nt (the lanes past K add a zero, as its masked loads do), and the lanes are added as whole
 * registers in mm_nt's pairs. So the same bits as mm_nt of W, for each of its kernels: fused
 * multiply-adds where it has AVX2, separate products in plain C. Each a[k] is broadcast once for
 * two panels and nothing is reduced across lanes. With AVX-512, 3 times as fast as mm_nt for one row
 * of A. With AVX2 (half a panel at a time) it is slower: on a Zen 3, mm_nt took 0.64 us where
 * mm_packed_nt_cols took 0.67 for M = 1, H = 100, and 1.07 against 2.13 us for M = 3 (3.9 against
 * 4.9 us, 5.4 against 14.6 at H = 256); in plain C they are level. */

int mm_nt_packs(void) { return mm_have_avx512(); }

/* Plain C, for a panel at a time: separate products and sums, as mm_nt's portable kernel. */
static void pnt_panel_c(int K, const float *a, const float *Bs, float *c, int n, int accumulate) {
    float l[8][MM_NR] = {{0}};
    for (int k = 0; k < K; k++) {
        const float *b = Bs + (size_t)k * MM_NR;
        float *lq = l[k & 7];
        for (int j = 0; j < MM_NR; j++) lq[j] = lq[j] + a[k] * b[j];
    }
    for (int k = K; k & 7; k++)
        for (int j = 0; j < MM_NR; j++) l[k & 7][j] += 0.0f;
    for (int j = 0; j < n; j++) {
        float d = ((l[0][j] + l[4][j]) + (l[2][j] + l[6][j])) + ((l[1][j] + l[5][j]) + (l[3][j] + l[7][j]));
        c[j] = accumulate ? c[j] + d : d;
    }
}

static void pnt_panels_portable(int np, int K, const float *a, const float *Bs, ptrdiff_t bstep, float *c,
                                int accumulate, int last) {
    for (int p = 0; p < np; p++)
        pnt_panel_c(K, a, Bs + p * bstep, c + p * MM_NR, p == np - 1 ? last : MM_NR, accumulate);
}

#if MM_X86
/* Half a panel: its 8 columns' 8 lanes in 8 registers (a whole panel's 16 would leave none for a
 * and B), a[k] broadcast from memory; n (1..8) columns stored. */
MM_AVX2 static MM_INLINE void pnt_half_avx2(int K, const float *a, const float *b, float *c, int n, int accumulate) {
    __m256 l[8];
    #pragma GCC unroll 8
    for (int q = 0; q < 8; q++) l[q] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8)
        #pragma GCC unroll 8
        for (int q = 0; q < 8; q++)
            l[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k + q), _mm256_loadu_ps(b + (size_t)(k + q) * MM_NR), l[q]);
    if (k < K)
        #pragma GCC unroll 8
        for (int q = 0; q < 8; q++)
            l[q] = k + q < K ? _mm256_fmadd_ps(_mm256_broadcast_ss(a + k + q), _mm256_loadu_ps(b + (size_t)(k + q) * MM_NR), l[q])
                             : _mm256_add_ps(l[q], _mm256_setzero_ps());
    __m256 d = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(l[0], l[4]), _mm256_add_ps(l[2], l[6])),
                             _mm256_add_ps(_mm256_add_ps(l[1], l[5]), _mm256_add_ps(l[3], l[7])));
    if (n == 8) {
        if (accumulate) d = _mm256_add_ps(_mm256_loadu_ps(c), d);
        _mm256_storeu_ps(c, d);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, d);
    for (int j = 0; j < n; j++) c[j] = accumulate ? c[j] + t[j] : t[j];
}

MM_AVX2 static void pnt_panels_avx2(int np, int K, const float *a, const float *Bs, ptrdiff_t bstep, float *c,
                                    int accumulate, int last) {
    for (int p = 0; p < np; p++) {
        int n = p == np - 1 ? last : MM_NR;
        pnt_half_avx2(K, a, Bs + p * bstep, c + p * MM_NR, mm_min(n, 8), accumulate);
        if (n > 8) pnt_half_avx2(K, a, Bs + p * bstep + 8, c + p * MM_NR + 8, n - 8, accumulate);
    }
}

MM_AVX512 static MM_INLINE void pnt_tile_avx512(const int np, int K, const float *a, const float *Bs,
                                                ptrdiff_t bstep, float *c, int accumulate, int last) {
    __m512 l[2][8];
    #pragma GCC unroll 2
    for (int p = 0; p < np; p++)
        #pragma GCC unroll 8
        for (int q = 0; q < 8; q++) l[p][q] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8)
        #pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            __m512 ak = _mm512_set1_ps(a[k + q]);
            #pragma GCC unroll 2
            for (int p = 0; p < np; p++)
                l[p][q] = _mm512_fmadd_ps(ak, _mm512_loadu_ps(Bs + p * bstep + (size_t)(k + q) * MM_NR), l[p][q]);
        }
    if (k < K)
        #pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            #pragma GCC unroll 2
            for (int p = 0; p < np; p++)
                l[p][q] = k + q < K ? _mm512_fmadd_ps(_mm512_set1_ps(a[k + q]),
                                                      _mm512_loadu_ps(Bs + p * bstep + (size_t)(k + q) * MM_NR), l[p][q])
                                    : _mm512_add_ps(l[p][q], _mm512_setzero_ps());
        }
    #pragma GCC unroll 2
    for (int p = 0; p < np; p++) {
        __m512 d = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l[p][0], l[p][4]), _mm512_add_ps(l[p][2], l[p][6])),
                                 _mm512_add_ps(_mm512_add_ps(l[p][1], l[p][5]), _mm512_add_ps(l[p][3], l[p][7])));
        __mmask16 m = p == np - 1 ? (__mmask16)((1u << last) - 1u) : 0xFFFF;
        if (accumulate) d = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + p * MM_NR), d);
        _mm512_mask_storeu_ps(c + p * MM_NR, m, d);
    }
}

MM_AVX512 static void pnt_panels_avx512(int np, int K, const float *a, const float *Bs, ptrdiff_t bstep, float *c,
                                        int accumulate, int last) {
    int p = 0;
    for (; p + 2 <= np; p += 2)
        pnt_tile_avx512(2, K, a, Bs + p * bstep, bstep, c + p * MM_NR, accumulate, p + 2 == np ? last : MM_NR);
    if (p < np) pnt_tile_avx512(1, K, a, Bs + p * bstep, bstep, c + p * MM_NR, accumulate, last);
}
#endif

typedef void (*pnt_kernel)(int np, int K, const float *a, const float *Bs, ptrdiff_t bstep, float *c,
                           int accumulate, int last);

static void pnt_cols_with(pnt_kernel panels, int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp,
                          float *C, ptrdiff_t ldc, int accumulate, int j0, int j1) {
    if (j1 > N) j1 = N;
    if (M <= 0 || j0 < 0 || j0 >= j1) return;
    int np = mm_cdiv(j1 - j0, MM_NR), last = j1 - j0 - (np - 1) * MM_NR;
    for (int i = 0; i < M; i++)
        panels(np, K, A + i * lda, Bp + (size_t)j0 * K, (ptrdiff_t)MM_NR * K, C + i * ldc + j0, accumulate, last);
}

void mm_packed_nt_cols(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                       ptrdiff_t ldc, int accumulate, int j0, int j1) {
    pnt_kernel panels = pnt_panels_portable;   /* as mm_nt chooses its kernel */
#if MM_X86
    if (mm_have_avx512()) panels = pnt_panels_avx512;
    else if (mm_have_avx2()) panels = pnt_panels_avx2;
#endif
    pnt_cols_with(panels, M, N, K, A, lda, Bp, C, ldc, accumulate, j0, j1);
}

void mm_packed_nt_cols_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                                ptrdiff_t ldc, int accumulate, int j0, int j1) {
    pnt_cols_with(pnt_panels_portable, M, N, K, A, lda, Bp, C, ldc, accumulate, j0, j1);
}

void mm_packed_nt_cols_avx2(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                            ptrdiff_t ldc, int accumulate, int j0, int j1) {
#if MM_X86
    if (mm_have_avx2()) {
        pnt_cols_with(pnt_panels_avx2, M, N, K, A, lda, Bp, C, ldc, accumulate, j0, j1);
        return;
    }
#endif
    mm_packed_nt_cols_portable(M, N, K, A, lda, Bp, C, ldc, accumulate, j0, j1);
}
