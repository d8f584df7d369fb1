/* int8.c: parameter blocks at every precision (minrnn_params_size, _compact, _expand), and int8
 * inference: rows quantized with power-of-two scales, and their products exact in int32.
 *
 * A row x (K floats) is stored as q (K int8 in [-127, 127]) and a scale s = 2^e, e the least
 * integer in [INT8_MIN_EXP, INT8_MAX_EXP] with max|x| <= 127 s (INT8_MAX_EXP if none: the row
 * saturates), q = round(x / s), ties to even. x / s is exact (s is a power of two), so the only
 * rounding is that one; so q s is x within s / 2, and within max|x| / 127 (s / 2 < max|x| / 127
 * unless e = INT8_MIN_EXP, where s / 2 is 2^-127). The same rule quantizes weights (once, a
 * row of each matrix) and activations (a row of the product's input, at each product).
 *
 * Powers of two make the int8 block a set of float32 values exactly: q s is exact, and the rows q s
 * quantize again to the same q and s (max|q| >= 64 unless e = INT8_MIN_EXP, so no smaller e fits).
 * So a checkpoint stores the block, loads as float32 parameters, and quantizes back bit for bit.
 *
 * A product y = x W^T + c of a quantized row x (qa, sa) and a weight (qw, sw per row) is
 *     y_n = c_n + ((float)sum_k qa_k qw_nk * sw_n) * sa
 * The sum is exact in int32 (K 127^2 < 2^31 for K <= INT8_MAX_COLS = 133,144: a block whose rows
 * are longer has no int8 form, minrnn_params_size says 0), so its order does not matter: the
 * VNNI kernel (vpdpbusd, which multiplies unsigned by signed bytes: qa + 128, then subtracts 128
 * times the row's sum of qw, kept in the block) and the plain C one give the same bits, at any
 * thread count. minrnn/reference/quantize.py is the same math.
 *
 * The int8 block: for each tensor, in the order of minrnn_tensor_info, a section on a 64-byte
 * boundary: q (rows x cols int8), then the rows' scales (float32), then their sums of q (int32),
 * each part padded to 64 bytes. A 2-D tensor's rows are quantized as above; a 1-D tensor (a bias)
 * keeps each value exactly, as q = 1 and the value as its scale. A seq2seq block's sections are
 * those of its encoder's block, its decoder's, then its own tensors': each part is a block too.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define I8_X86 1
#include <immintrin.h>
#else
#define I8_X86 0
#endif

/* ---- quantizing a row */

int row_scale(const float *x, int K, float *scale) {
    float m = 0.0f;
    int finite = 1;
    #pragma omp simd reduction(max : m) reduction(& : finite)
    for (int k = 0; k < K; k++) {
        float a = fabsf(x[k]);
        finite &= a <= FLT_MAX;   /* 0 for a NaN or an infinity */
        m = a > m ? a : m;
    }
    if (!finite) {
        *scale = NAN;   /* the product's outputs are NaN, as they would be in float32 */
        return -1;
    }
    int x2, e;
    frexpf(m, &x2);   /* m = f 2^x2, f in [0.5, 1), and 127 2^(x2-7) < 2^x2 */
    e = m == 0.0f ? INT8_MIN_EXP : m <= ldexpf(127.0f, x2 - 7) ? x2 - 7 : x2 - 6;
    e = e < INT8_MIN_EXP ? INT8_MIN_EXP : e > INT8_MAX_EXP ? INT8_MAX_EXP : e;
    *scale = ldexpf(1.0f, e);
    return m > 127.0f * *scale;   /* 1: saturated */
}

void quantize_with(const float *x, int K, float scale, int8_t *q) {
    if (isnan(scale)) {
        memset(q, 0, (size_t)K);
        return;
    }
    float inv = 1.0f / scale;   /* a power of two: x * inv is x / scale, exactly */
    #pragma omp simd
    for (int k = 0; k < K; k++) {
        float v = x[k] * inv;
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;   /* only a saturated row clips */
        q[k] = (int8_t)((v + 12582912.0f) - 12582912.0f);   /* rounded to nearest, ties to even: 1.5 2^23 */
    }
}

int quantize_row(const float *x, int K, int8_t *q, float *scale) {
    int status = row_scale(x, K, scale);
    quantize_with(x, K, *scale, q);
    return status;
}

void quantize_rows(int M, int K, const float *A, ptrdiff_t lda, int8_t *Aq, ptrdiff_t ldq, float *scales, int nt) {
    SHARED_FOR(threads_for(nt, 4.0 * M * K), i, M, quantize_row(A + i * lda, K, Aq + i * ldq, scales + i););
}

/* ---- the block of a precision */

int8_section int8_section_of(int32_t rows, int32_t cols, size_t at) {
    int8_section s;
    s.q = at;
    s.scale = s.q + round_up((size_t)rows * cols, ALIGN_BYTES);
    s.sum = s.scale + round_up((size_t)rows * sizeof(float), ALIGN_BYTES);
    s.end = s.sum + round_up((size_t)rows * sizeof(int32_t), ALIGN_BYTES);
    return s;
}

/* Where tensor i starts in a block at precision: in bytes (int8), or in elements. */
size_t block_offset(const minrnn_config *cfg, int precision, int index) {
    minrnn_tensor t;
    if (precision != MINRNN_INT8) {
        if (minrnn_tensor_info(cfg, index, &t) != MINRNN_OK) return 0;
        return (size_t)t.offset;
    }
    size_t at = 0;
    for (int i = 0; i < index && minrnn_tensor_info(cfg, i, &t) == MINRNN_OK; i++)
        at = int8_section_of(t.rows, t.cols, at).end;
    return at;
}

size_t minrnn_params_size(const minrnn_config *cfg, int precision) {
    size_t n = minrnn_param_count(cfg);
    if (n == 0) return 0;
    if (precision == MINRNN_FLOAT32) return n * sizeof(float);
    if (precision == MINRNN_BFLOAT16) return n * sizeof(uint16_t);
    if (precision != MINRNN_INT8) return 0;
    minrnn_tensor t;
    for (int i = 0, count = minrnn_tensor_count(cfg); i < count && minrnn_tensor_info(cfg, i, &t) == MINRNN_OK; i++)
        if (t.cols > INT8_MAX_COLS) return 0;   /* a product's sum could leave int32 */
    return block_offset(cfg, precision, minrnn_tensor_count(cfg));
}

/* Tensor t (float32 at x) into its int8 section at out; MINRNN_ERR_ARG if a weight is not finite or
 * saturates. */
static int compact_int8_tensor(const minrnn_tensor *t, const float *x, unsigned char *out) {
    int8_section s = int8_section_of(t->rows, t->cols, 0);
    int8_t *q = (int8_t *)(out + s.q);
    float *scale = (float *)(out + s.scale);
    int32_t *sum = (int32_t *)(out + s.sum);
    for (int32_t r = 0; r < t->rows; r++) {
        const float *row = x + (size_t)r * t->cols;
        int8_t *qr = q + (size_t)r * t->cols;
        if (t->ndim == 1) {
            if (!isfinite(row[0])) return MINRNN_ERR_ARG;
            qr[0] = 1, scale[r] = row[0];
        } else if (quantize_row(row, t->cols, qr, scale + r) != 0) {
            return MINRNN_ERR_ARG;
        }
        int32_t total = 0;
        for (int32_t k = 0; k < t->cols; k++) total += qr[k];
        sum[r] = total;
    }
    return MINRNN_OK;
}

int minrnn_params_compact(const minrnn_config *cfg, const float *params, int precision, void *out) {
    size_t n = minrnn_param_count(cfg), bytes = minrnn_params_size(cfg, precision);
    if (!params || !out || bytes == 0) return n == 0 ? MINRNN_ERR_CONFIG : MINRNN_ERR_ARG;
    if (precision == MINRNN_FLOAT32) {
        memmove(out, params, bytes);
    } else if (precision == MINRNN_BFLOAT16) {
        uint16_t *half = out;
        for (size_t i = 0; i < n; i++) half[i] = float_to_bf16(params[i]);
    } else {
        memset(out, 0, bytes);   /* the padding */
        minrnn_tensor t;
        size_t at = 0;
        for (int i = 0, count = minrnn_tensor_count(cfg); i < count; i++) {
            minrnn_tensor_info(cfg, i, &t);
            int status = compact_int8_tensor(&t, params + t.offset, (unsigned char *)out + at);
            if (status != MINRNN_OK) return status;
            at = int8_section_of(t.rows, t.cols, at).end;
        }
    }
    return MINRNN_OK;
}

void expand_tensors(const minrnn_config *cfg, int precision, const void *block, int first, float *out) {
    minrnn_tensor t;
    size_t at = block_offset(cfg, precision, first);
    int64_t out0 = minrnn_tensor_info(cfg, first, &t) == MINRNN_OK ? t.offset : 0;
    for (int i = first, count = minrnn_tensor_count(cfg); i < count; i++) {
        minrnn_tensor_info(cfg, i, &t);
        size_t n = (size_t)t.rows * t.cols;
        float *o = out + (t.offset - out0);
        if (precision == MINRNN_FLOAT32) {
            memcpy(o, (const float *)block + t.offset, n * sizeof(float));
        } else if (precision == MINRNN_BFLOAT16) {
            for (size_t k = 0; k < n; k++) o[k] = bf16_to_float(((const uint16_t *)block)[t.offset + k]);
        } else {
            int8_section s = int8_section_of(t.rows, t.cols, at);
            const int8_t *q = (const int8_t *)((const unsigned char *)block + s.q);
            const float *scale = (const float *)((const unsigned char *)block + s.scale);
            for (size_t k = 0; k < n; k++) o[k] = (float)q[k] * scale[k / t.cols];   /* exact */
            at = s.end;
        }
    }
}

int minrnn_params_expand(const minrnn_config *cfg, int precision, const void *block, float *out) {
    if (!block || !out) return MINRNN_ERR_ARG;
    if (minrnn_param_count(cfg) == 0) return MINRNN_ERR_CONFIG;
    if (minrnn_params_size(cfg, precision) == 0) return MINRNN_ERR_ARG;
    expand_tensors(cfg, precision, block, 0, out);
    return MINRNN_OK;
}

/* ---- products: C (M, N) [+]= the int8 product of A's quantized rows (Aq, sa) and W's (Wq, sw,
 * rowsum), as in the comment at the top. Threads split W's rows in groups of I8_W, each thread a
 * contiguous range of groups, which a kernel takes in one call (a call per group cost 5% of a
 * sampled character: 13 arguments and a pointer for 2,048 multiply-adds at K = 256). */

#define I8_W 8   /* rows of W per group */
#define I8_A 4   /* rows of A per call of a group kernel */
#define I8_T 4   /* rows of W in a tile of more than one row of A */

/* C (ma, nw) [+]= the product of ma <= I8_A rows of A and nw rows of W. */
typedef void (*i8_kernel)(int ma, int nw, int K, const int8_t *A, ptrdiff_t lda, const float *sa, const int8_t *W,
                          ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc,
                          int accumulate);

/* One output: the rounding of every kernel, in this order. */
static inline float i8_scaled(int32_t dot, float sw, float sa) { return ((float)dot * sw) * sa; }

/* plain C, which compilers vectorize as they can */
static void i8_tile_portable(int ma, int nw, int K, const int8_t *A, ptrdiff_t lda, const float *sa, const int8_t *W,
                             ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc,
                             int accumulate) {
    (void)rowsum;
    for (int i = 0; i < ma; i++)
        for (int j = 0; j < nw; j++) {
            const int8_t *a = A + i * lda, *w = W + j * ldw;
            int32_t dot = 0;
            for (int k = 0; k < K; k++) dot += (int32_t)a[k] * w[k];
            float y = i8_scaled(dot, sw[j], sa[i]), *c = C + i * ldc + j;
            *c = accumulate ? *c + y : y;
        }
}

#if I8_X86
#define I8_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* acc[i][j] = 16 lanes whose sum is the dot of A row i and W row j, with vpdpbusd: (a + 128) w
 * summed by fours, 64 bytes of K at a time (the last piece masked: w is 0 past K), minus 128 times
 * W's row sum added once at the end. MA, NW: constants, and the loops unrolled, so that acc stays
 * in registers (without the pragmas GCC kept it on the stack: a load and a store per vpdpbusd). */
I8_VNNI static inline __attribute__((always_inline)) void i8_acc_vnni(
    const int MA, const int NW, int K, const int8_t *A, ptrdiff_t lda, const int8_t *W, ptrdiff_t ldw,
    __m512i acc[][I8_W]) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    #pragma GCC unroll 4
    for (int i = 0; i < MA; i++)
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) acc[i][j] = _mm512_setzero_si512();
    for (int k = 0; k < K; k += 64) {
        __mmask64 mask = K - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
        __m512i w[I8_W];
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) w[j] = _mm512_maskz_loadu_epi8(mask, W + j * ldw + k);
        #pragma GCC unroll 4
        for (int i = 0; i < MA; i++) {
            __m512i a = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, A + i * lda + k), flip);
            #pragma GCC unroll 8
            for (int j = 0; j < NW; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, w[j]);
        }
    }
}

/* The four sums of a row of A against four rows of W, as one vector of 4 lanes (any order of
 * integer additions gives the same sums). */
I8_VNNI static inline __attribute__((always_inline)) __m128i i8_sum4(const __m512i *acc) {
    __m512i x01 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[0], acc[1]), _mm512_unpackhi_epi32(acc[0], acc[1]));
    __m512i x23 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[2], acc[3]), _mm512_unpackhi_epi32(acc[2], acc[3]));
    __m512i y = _mm512_add_epi32(_mm512_unpacklo_epi64(x01, x23), _mm512_unpackhi_epi64(x01, x23));
    __m256i z = _mm256_add_epi32(_mm512_castsi512_si256(y), _mm512_extracti64x4_epi64(y, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(z), _mm256_extracti128_si256(z, 1));
}

/* One row's dot from its lanes: added up and shifted in wrapping (vector or unsigned) arithmetic,
 * which gives the exact sum whenever it fits an int32 (K <= INT8_MAX_COLS), as the lanes themselves
 * wrap past 66,313 columns of (a + 128) w. */
I8_VNNI static inline __attribute__((always_inline)) int32_t i8_sum1(__m512i acc, int32_t rowsum) {
    __m256i z = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    __m128i y = _mm_add_epi32(_mm256_castsi256_si128(z), _mm256_extracti128_si256(z, 1));
    y = _mm_add_epi32(y, _mm_shuffle_epi32(y, 0x4E));
    y = _mm_add_epi32(y, _mm_shuffle_epi32(y, 0xB1));
    return (int32_t)((uint32_t)_mm_cvtsi128_si32(y) - ((uint32_t)rowsum << 7));
}

/* C (row i, 4 columns) [+]= the four dots of acc (its lanes), shifted and scaled: i8_scaled, lane by lane. */
I8_VNNI static inline __attribute__((always_inline)) void i8_store4(const __m512i *acc, const int32_t *rowsum,
                                                                   const float *sw, float sa, float *c,
                                                                   int accumulate) {
    __m128i shift = _mm_slli_epi32(_mm_loadu_si128((const __m128i *)rowsum), 7);   /* wrapping, as i8_sum1 */
    __m128 y = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(i8_sum4(acc), shift)), _mm_loadu_ps(sw)),
                          _mm_set1_ps(sa));
    _mm_storeu_ps(c, accumulate ? _mm_add_ps(_mm_loadu_ps(c), y) : y);
}

/* MA rows of A against NW = 4 or 8 rows of W (8 only for one row of A: eight independent chains
 * while one stream samples, the rows of W streaming from memory). */
I8_VNNI static inline __attribute__((always_inline)) void i8_tile_n_vnni(
    const int MA, const int NW, int K, const int8_t *A, ptrdiff_t lda, const float *sa, const int8_t *W,
    ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate) {
    __m512i acc[I8_A][I8_W];
    i8_acc_vnni(MA, NW, K, A, lda, W, ldw, acc);
    #pragma GCC unroll 4
    for (int i = 0; i < MA; i++)
        #pragma GCC unroll 2
        for (int j = 0; j < NW; j += 4) i8_store4(acc[i] + j, rowsum + j, sw + j, sa[i], C + i * ldc + j, accumulate);
}

I8_VNNI static void i8_tile_vnni(int ma, int nw, int K, const int8_t *A, ptrdiff_t lda, const float *sa,
                                 const int8_t *W, ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C,
                                 ptrdiff_t ldc, int accumulate) {
    int j = 0;
    if (ma == 1)
        for (; j + I8_W <= nw; j += I8_W)
            i8_tile_n_vnni(1, I8_W, K, A, lda, sa, W + j * ldw, ldw, sw + j, rowsum + j, C + j, ldc, accumulate);
    for (; j + I8_T <= nw; j += I8_T) {
        const int8_t *w = W + j * ldw;
        float *c = C + j;
        switch (ma) {
        case 1: i8_tile_n_vnni(1, I8_T, K, A, lda, sa, w, ldw, sw + j, rowsum + j, c, ldc, accumulate); break;
        case 2: i8_tile_n_vnni(2, I8_T, K, A, lda, sa, w, ldw, sw + j, rowsum + j, c, ldc, accumulate); break;
        case 3: i8_tile_n_vnni(3, I8_T, K, A, lda, sa, w, ldw, sw + j, rowsum + j, c, ldc, accumulate); break;
        default: i8_tile_n_vnni(4, I8_T, K, A, lda, sa, w, ldw, sw + j, rowsum + j, c, ldc, accumulate); break;
        }
    }
    for (; j < nw; j++)   /* the last rows of W: one dot at a time */
        for (int i = 0; i < ma; i++) {
            __m512i acc[1][I8_W];
            i8_acc_vnni(1, 1, K, A + i * lda, lda, W + j * ldw, ldw, acc);
            float y = i8_scaled(i8_sum1(acc[0][0], rowsum[j]), sw[j], sa[i]);
            float *c = C + i * ldc + j;
            *c = accumulate ? *c + y : y;
        }
}

int mm_have_vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

/* AVX2 (no VNNI): 32 bytes of K at a time, by vpmaddubsw, which multiplies unsigned bytes by signed
 * ones and adds pairs into int16 (saturating): |w| (at most 128 as an unsigned byte) times a with
 * w's sign (|a| <= 127, as quantize_with makes every q), so a pair is at most 2 * 128 * 127 < 2^15
 * and never saturates; vpmaddwd by ones widens the pairs into int32 lanes, exactly. The last
 * K % 32 columns in plain C. All integer: the bits of the other kernels. */
#define I8_AVX2 __attribute__((target("avx2")))

/* acc + the 8 lane sums of 32 products a w: vpmaddubsw(|w|, a with w's sign), vpmaddwd by ones. */
I8_AVX2 static inline __attribute__((always_inline)) __m256i i8_madd_avx2(__m256i acc, __m256i a, __m256i w) {
    __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/* acc[i][j]: 8 lanes whose sum is the dot of A row i and W row j over k < K - K % 32. */
I8_AVX2 static inline __attribute__((always_inline)) void i8_acc_avx2(
    const int MA, const int NW, int K, const int8_t *A, ptrdiff_t lda, const int8_t *W, ptrdiff_t ldw,
    __m256i acc[][I8_W]) {
    #pragma GCC unroll 2
    for (int i = 0; i < MA; i++)
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) acc[i][j] = _mm256_setzero_si256();
    for (int k = 0; k + 32 <= K; k += 32) {
        __m256i a[2];
        #pragma GCC unroll 2
        for (int i = 0; i < MA; i++) a[i] = _mm256_loadu_si256((const __m256i *)(A + i * lda + k));
        #pragma GCC unroll 8
        for (int j = 0; j < NW; j++) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(W + j * ldw + k));
            #pragma GCC unroll 2
            for (int i = 0; i < MA; i++) acc[i][j] = i8_madd_avx2(acc[i][j], a[i], w);
        }
    }
}

/* The dot of the last K % 32 columns of a row of A and a row of W. */
static inline int32_t i8_tail_dot(int K, const int8_t *a, const int8_t *w) {
    int32_t dot = 0;
    for (int k = K & ~31; k < K; k++) dot += (int32_t)a[k] * w[k];
    return dot;
}

/* The four sums of four accumulators, in wrapping vector arithmetic (exact whenever the true sum
 * fits an int32, as in i8_sum1). */
I8_AVX2 static inline __attribute__((always_inline)) __m128i i8_sum4_avx2(const __m256i *acc) {
    __m256i y = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
}

/* MA (1 or 2) rows of A against NW = 4 or 8 rows of W (8 only for one row of A). */
I8_AVX2 static inline __attribute__((always_inline)) void i8_tile_n_avx2(
    const int MA, const int NW, int K, const int8_t *A, ptrdiff_t lda, const float *sa, const int8_t *W,
    ptrdiff_t ldw, const float *sw, float *C, ptrdiff_t ldc, int accumulate) {
    __m256i acc[2][I8_W];
    i8_acc_avx2(MA, NW, K, A, lda, W, ldw, acc);
    #pragma GCC unroll 2
    for (int i = 0; i < MA; i++)
        #pragma GCC unroll 2
        for (int j = 0; j < NW; j += 4) {
            __m128i dot = i8_sum4_avx2(acc[i] + j);
            if (K & 31)
                dot = _mm_add_epi32(dot, _mm_setr_epi32(i8_tail_dot(K, A + i * lda, W + (j + 0) * ldw),
                                                        i8_tail_dot(K, A + i * lda, W + (j + 1) * ldw),
                                                        i8_tail_dot(K, A + i * lda, W + (j + 2) * ldw),
                                                        i8_tail_dot(K, A + i * lda, W + (j + 3) * ldw)));
            __m128 y = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(dot), _mm_loadu_ps(sw + j)), _mm_set1_ps(sa[i]));
            float *c = C + i * ldc + j;
            _mm_storeu_ps(c, accumulate ? _mm_add_ps(_mm_loadu_ps(c), y) : y);
        }
}

I8_AVX2 static void i8_tile_avx2(int ma, int nw, int K, const int8_t *A, ptrdiff_t lda, const float *sa,
                                 const int8_t *W, ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C,
                                 ptrdiff_t ldc, int accumulate) {
    int j = 0;
    if (ma == 1)
        for (; j + I8_W <= nw; j += I8_W) i8_tile_n_avx2(1, I8_W, K, A, lda, sa, W + j * ldw, ldw, sw + j, C + j, ldc, accumulate);
    for (; j + I8_T <= nw; j += I8_T) {
        int i = 0;
        for (; i + 2 <= ma; i += 2)
            i8_tile_n_avx2(2, I8_T, K, A + i * lda, lda, sa + i, W + j * ldw, ldw, sw + j, C + i * ldc + j, ldc, accumulate);
        if (i < ma)
            i8_tile_n_avx2(1, I8_T, K, A + i * lda, lda, sa + i, W + j * ldw, ldw, sw + j, C + i * ldc + j, ldc, accumulate);
    }
    if (j < nw)   /* the last rows of W */
        i8_tile_portable(ma, nw - j, K, A, lda, sa, W + j * ldw, ldw, sw + j, rowsum + j, C + j, ldc, accumulate);
}

#else
int mm_have_vnni(void) { return 0; }
#endif

/* Part p of `parts` of W's groups of rows against every row of A. */
static void i8_rows(i8_kernel kern, int p, int parts, int M, int N, int K, const int8_t *Aq, ptrdiff_t lda,
                    const float *sa, const int8_t *Wq, ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C,
                    ptrdiff_t ldc, int accumulate) {
    int groups = (N + I8_W - 1) / I8_W;
    int j0 = part_start(groups, p, parts) * I8_W, j1 = part_start(groups, p + 1, parts) * I8_W;
    if (j1 > N) j1 = N;
    for (int i0 = 0; i0 < M; i0 += I8_A)
        kern(M - i0 < I8_A ? M - i0 : I8_A, j1 - j0, K, Aq + i0 * lda, lda, sa + i0, Wq + j0 * ldw, ldw, sw + j0,
             rowsum + j0, C + i0 * ldc + j0, ldc, accumulate);
}

static void mm_nt_i8_with(i8_kernel kern, int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa,
                          const int8_t *Wq, ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C,
                          ptrdiff_t ldc, int accumulate, int nthreads) {
    if (M <= 0 || N <= 0) return;
    int threads = resolve_threads(nthreads), groups = (N + I8_W - 1) / I8_W;
    int parts = threads < groups ? threads : groups;
    SHARED_FOR(threads, p, parts, i8_rows(kern, p, parts, M, N, K, Aq, lda, sa, Wq, ldw, sw, rowsum, C, ldc, accumulate););
}

/* The kernel without VNNI: AVX2's where the CPU has it, else plain C. */
static i8_kernel i8_without_vnni(void) {
#if I8_X86
    if (mm_have_avx2()) return i8_tile_avx2;
#endif
    return i8_tile_portable;
}

void mm_nt_i8(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
              ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate,
              int nthreads) {
    i8_kernel kern = i8_without_vnni();
#if I8_X86
    if (mm_have_vnni()) kern = i8_tile_vnni;
#endif
    mm_nt_i8_with(kern, M, N, K, Aq, lda, sa, Wq, ldw, sw, rowsum, C, ldc, accumulate, nthreads);
}

void mm_nt_i8_portable(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
                       ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc,
                       int accumulate, int nthreads) {
    mm_nt_i8_with(i8_tile_portable, M, N, K, Aq, lda, sa, Wq, ldw, sw, rowsum, C, ldc, accumulate, nthreads);
}

void mm_nt_i8_avx2(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
                   ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate,
                   int nthreads) {
    mm_nt_i8_with(i8_without_vnni(), M, N, K, Aq, lda, sa, Wq, ldw, sw, rowsum, C, ldc, accumulate, nthreads);
}

/* ---- mm_nt_i8_prepared: the same products with W prepared once for the steps of a few streams,
 * as mm_nt_prepared prepares float32 (cext/gemm.c): groups of I8_W rows (rows past N zero), each
 * one run of memory, the 32 bytes k..k + 31 of its rows one after another for k = 0, 32, ... up to
 * K rounded up to 32 (zeros past K, which add nothing to an exact sum). The sums are exact, so the
 * bits are mm_nt_i8's. A Zen 3 core, one row of A against 1,024-6,144 x 256-512 in L3: 1.2-1.55
 * times as fast as the unprepared AVX2 kernel (34-40 -> 47-53 GB/s). On a CPU with VNNI, whose
 * kernel this does not use, model.c leaves the weights unprepared. */

static size_t i8_prep_k(int K) { return ((size_t)K + 31) / 32 * 32; }

size_t mm_i8_prepared_size(int N, int K) {
    if (N <= 0 || K <= 0) return 0;
    return ((size_t)N + I8_W - 1) / I8_W * I8_W * i8_prep_k(K);
}

void mm_prepare_i8(int N, int K, const int8_t *W, ptrdiff_t ldw, int8_t *P, int nthreads) {
    size_t KP = i8_prep_k(K);
    SHARED_FOR(resolve_threads(nthreads), g, (N + I8_W - 1) / I8_W,
        for (size_t k = 0; k < KP; k += 32)
            for (int j = 0; j < I8_W; j++) {
                int row = g * I8_W + j;
                int8_t *to = P + (size_t)g * I8_W * KP + k * I8_W + (size_t)j * 32;
                size_t n = row < N && k < (size_t)K ? ((size_t)K - k < 32 ? (size_t)K - k : 32) : 0;
                if (n) memcpy(to, W + (size_t)row * (size_t)ldw + k, n);
                memset(to + n, 0, 32 - n);
            }
    );
}

/* One row a of A (K bytes, scale sa) against N rows of W from the group at p on. */
typedef void (*i8_prep_kernel)(int K, const int8_t *a, float sa, const int8_t *p, int N, const float *sw, float *c,
                               int accumulate);

static void i8_prep_rows_portable(int K, const int8_t *a, float sa, const int8_t *p, int N, const float *sw, float *c,
                                  int accumulate) {
    size_t group = (size_t)I8_W * i8_prep_k(K);
    for (int j = 0; j < N; j++) {
        const int8_t *w = p + (size_t)(j / I8_W) * group + (size_t)(j % I8_W) * 32;
        int32_t dot = 0;
        for (int k = 0; k < K; k++) dot += (int32_t)a[k] * w[(size_t)(k / 32) * 32 * I8_W + k % 32];
        float y = i8_scaled(dot, sw[j], sa);
        c[j] = accumulate ? c[j] + y : y;
    }
}

#if I8_X86
/* One step of 32 bytes of a row of A (av) into the 8 rows' sums, from the group's 256 bytes at p. */
I8_AVX2 static inline __attribute__((always_inline)) void i8_prep_step_avx2(__m256i av, const int8_t *p, __m256i *acc) {
    #pragma GCC unroll 8
    for (int j = 0; j < I8_W; j++) acc[j] = i8_madd_avx2(acc[j], av, _mm256_loadu_si256((const __m256i *)(p + 32 * j)));
}

/* A group: 8 chains, one a row; a's last K % 32 bytes from a zeroed copy (a is not read past K) */
I8_AVX2 static inline __attribute__((always_inline)) void i8_prep_group_avx2(
    int K, const int8_t *a, float sa, const int8_t *p, const float *sw, float *c, int n, int accumulate) {
    __m256i acc[I8_W];
    #pragma GCC unroll 8
    for (int j = 0; j < I8_W; j++) acc[j] = _mm256_setzero_si256();
    int k = 0;
    for (; k + 32 <= K; k += 32, p += 32 * I8_W) i8_prep_step_avx2(_mm256_loadu_si256((const __m256i *)(a + k)), p, acc);
    if (k < K) {
        int8_t last[32] = {0};
        memcpy(last, a + k, (size_t)(K - k));
        i8_prep_step_avx2(_mm256_loadu_si256((const __m256i *)last), p, acc);
    }
    float scales[I8_W] = {0};
    if (n < I8_W) sw = memcpy(scales, sw, (size_t)n * sizeof(float));   /* not read past the last row */
    for (int h = 0; h < I8_W; h += 4) {   /* a whole group's 8 sums by fours, a partial one's as many as it has */
        __m128 y = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(i8_sum4_avx2(acc + h)), _mm_loadu_ps(sw + h)), _mm_set1_ps(sa));
        if (n == I8_W) {
            _mm_storeu_ps(c + h, accumulate ? _mm_add_ps(_mm_loadu_ps(c + h), y) : y);
        } else {
            float part[4];
            _mm_storeu_ps(part, y);
            for (int j = h; j < n && j < h + 4; j++) c[j] = accumulate ? c[j] + part[j - h] : part[j - h];
        }
    }
}

I8_AVX2 static void i8_prep_rows_avx2(int K, const int8_t *a, float sa, const int8_t *p, int N, const float *sw, float *c,
                                      int accumulate) {
    size_t group = (size_t)I8_W * i8_prep_k(K);
    for (int g = 0; g * I8_W < N; g++)
        i8_prep_group_avx2(K, a, sa, p + g * group, sw + g * I8_W, c + g * I8_W, N - g * I8_W < I8_W ? N - g * I8_W : I8_W,
                           accumulate);
}
#endif

static void mm_nt_i8_prepared_with(i8_prep_kernel kern, int M, int N, int K, const int8_t *Aq, ptrdiff_t lda,
                                   const float *sa, const int8_t *P, const float *sw, float *C, ptrdiff_t ldc,
                                   int accumulate, int nthreads) {
    if (M <= 0 || N <= 0) return;
    size_t group = (size_t)I8_W * i8_prep_k(K);
    int threads = resolve_threads(nthreads), groups = (N + I8_W - 1) / I8_W, parts = threads < groups ? threads : groups;
    SHARED_FOR(threads, part, parts,   /* contiguous ranges of groups, as mm_nt_prepared's */
        int g0 = part_start(groups, part, parts), g1 = part_start(groups, part + 1, parts);
        int n = (N < g1 * I8_W ? N : g1 * I8_W) - g0 * I8_W;
        for (int i = 0; i < M; i++)
            kern(K, Aq + i * lda, sa[i], P + (size_t)g0 * group, n, sw + g0 * I8_W, C + i * ldc + g0 * I8_W, accumulate);
    );
}

void mm_nt_i8_prepared(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *P,
                       const float *sw, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    i8_prep_kernel kern = i8_prep_rows_portable;
#if I8_X86
    if (mm_have_avx2()) kern = i8_prep_rows_avx2;
#endif
    mm_nt_i8_prepared_with(kern, M, N, K, Aq, lda, sa, P, sw, C, ldc, accumulate, nthreads);
}

void mm_nt_i8_prepared_portable(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *P,
                                const float *sw, float *C, ptrdiff_t ldc, int accumulate, int nthreads) {
    mm_nt_i8_prepared_with(i8_prep_rows_portable, M, N, K, Aq, lda, sa, P, sw, C, ldc, accumulate, nthreads);
}
