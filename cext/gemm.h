/* gemm.h: the one matrix-product kernel of the core (internal, not installed).
 *
 *     C (M, N) = [C +] A (M, K) . B (K, N)
 *
 * with any strides: A(i, k) = A[i*rsa + k*csa], B(k, j) = B[k*rsb + j*csb], C(i, j) = C[i*ldc + j].
 * B is first packed into column panels of MM_NR (zero-padded), because in an RNN the B side is
 * usually a weight matrix that stays fixed for a whole training step and is used T times.
 *
 * Determinism: every C(i, j) is computed by exactly one thread, from zero, by a sequence of
 * operations that depends only on the shapes (M, N, K), never on the thread count or on how the
 * columns are split among callers (splits at multiples of MM_NR); the sum is added to C(i, j)
 * when accumulating (for K > 256, block by block in k-blocks fixed by K: see gemm.c). The
 * AVX2+FMA kernel (chosen at run time when the CPU has it) and the portable kernel may differ
 * from each other in the last bits; each is deterministic. mm_packed's AVX-512 kernel (chosen
 * when the CPU has AVX-512F) computes the same fused chains as the AVX2 one: the same bits.
 *
 * nthreads <= 0 means OpenMP's default. No allocation, no global state.
 */
#ifndef MINRNN_GEMM_H
#define MINRNN_GEMM_H

#include <stddef.h>
#include <stdint.h>

#define MM_NR 16   /* width of a packed column panel */

/* Floats needed to pack a (K, N) matrix. */
size_t mm_packed_size(int K, int N);

/* Pack B (K, N) into Bp (mm_packed_size(K, N) floats). */
void mm_pack(int K, int N, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nthreads);

/* The same from a bfloat16 B, widened exactly: the packed floats are those of the widened B. */
void mm_pack_bf16(int K, int N, const uint16_t *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp, int nthreads);

/* C = [C +] A . B with B packed by mm_pack. accumulate: 0 overwrites C, 1 adds into it. */
void mm_packed(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *Bp,
               float *C, ptrdiff_t ldc, int accumulate, int nthreads);

/* Single-threaded: only columns [j0, j1) of the product above (j0 a multiple of MM_NR; j1 a
 * multiple of MM_NR or N). For callers that run their own parallel region. */
void mm_packed_cols(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int j0, int j1);

/* Single-threaded: columns [j0, j1) (as for mm_packed_cols) of C = [C +] A . B with B = W^T
 * packed by mm_pack, summed as mm_nt sums A . W^T: the same bits as mm_nt. For a few rows of A
 * against a W packed once (the recurrence of a few streams over a sequence). */
void mm_packed_nt_cols(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                       ptrdiff_t ldc, int accumulate, int j0, int j1);

/* Whether mm_packed_nt_cols is faster than mm_nt for fewer than 8 rows of A on this CPU, so that
 * packing W for a recurrence pays: only its AVX-512 kernel is. */
int mm_nt_packs(void);

/* C (M, N) = [C +] A (M, K) . W^T with W (N, K) row-major, unpacked: dot products along W's rows,
 * streaming W once. For small M (one token per stream while sampling), where packing would cost
 * more than the product. A's rows and W's rows are contiguous (lda, ldw are row strides). */
void mm_nt(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W, ptrdiff_t ldw,
           float *C, ptrdiff_t ldc, int accumulate, int nthreads);

/* The same with a bfloat16 W (ldw in its elements): exactly mm_nt of the widened W, reading half
 * the bytes. For sampling with compact weights, where streaming W is the cost. */
void mm_nt_bf16(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *W, ptrdiff_t ldw,
                float *C, ptrdiff_t ldc, int accumulate, int nthreads);

/* W (N, K) prepared once for the steps of a few streams (cext/gemm.c: groups of 8 rows, each one
 * run of memory, zeros past N and K): mm_prepared_size(N, K) elements of W's type. */
size_t mm_prepared_size(int N, int K);
void mm_prepare(int N, int K, const float *W, ptrdiff_t ldw, float *P, int nthreads);
void mm_prepare_bf16(int N, int K, const uint16_t *W, ptrdiff_t ldw, uint16_t *P, int nthreads);

/* mm_nt (mm_nt_bf16) of the W that P holds, the same bits, each row of A reading the prepared W
 * as one sequential stream. P may start at any group: rows [8g, 8g + N) at P + g * (its size for
 * 8 rows). */
void mm_nt_prepared(int M, int N, int K, const float *A, ptrdiff_t lda, const float *P, float *C, ptrdiff_t ldc,
                    int accumulate, int nthreads);
void mm_nt_prepared_bf16(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *P, float *C,
                         ptrdiff_t ldc, int accumulate, int nthreads);

/* C (M, N) = [C +] the int8 product of A's rows, quantized (Aq (M, K) and scales sa (M)), and W's
 * (Wq (N, K), scales sw (N), rowsum (N): the sums of Wq's rows): C(i, j) = [C(i, j) +]
 * ((float)dot(Aq_i, Wq_j) * sw_j) * sa_i, the dot exact in int32 (cext/int8.c). */
void mm_nt_i8(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
              ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate,
              int nthreads);

/* Wq (N, K) prepared once for the steps of a few streams (cext/int8.c: groups of 8 rows, each one
 * run of memory, zeros past N and K): mm_i8_prepared_size(N, K) bytes. mm_nt_i8_prepared is
 * mm_nt_i8 of the W that P holds (its scales sw as mm_nt_i8's), the same bits; P may start at any
 * group, as mm_nt_prepared's. */
size_t mm_i8_prepared_size(int N, int K);
void mm_prepare_i8(int N, int K, const int8_t *W, ptrdiff_t ldw, int8_t *P, int nthreads);
void mm_nt_i8_prepared(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *P,
                       const float *sw, float *C, ptrdiff_t ldc, int accumulate, int nthreads);

/* ---- for tests: the kernels behind mm_packed and mm_nt, by name. The plain C ones always work;
 * the AVX2+FMA ones only when mm_have_avx2() (on other CPUs they are the plain C ones). */
int mm_have_avx2(void);
int mm_have_avx512(void);   /* mm_packed then runs an AVX-512 kernel: the same bits as the AVX2 one */
int mm_have_vnni(void);     /* mm_nt_i8 then runs vpdpbusd: the same bits as the plain C one */
void mm_nt_i8_avx2(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
                   ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc, int accumulate,
                   int nthreads);   /* vpmaddwd where mm_have_avx2(), without VNNI; same bits */
void mm_nt_i8_portable(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *Wq,
                       ptrdiff_t ldw, const float *sw, const int32_t *rowsum, float *C, ptrdiff_t ldc,
                       int accumulate, int nthreads);
void mm_packed_portable(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                        const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_packed_avx2(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                    const float *Bp, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_packed_nt_cols_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                                ptrdiff_t ldc, int accumulate, int j0, int j1);
void mm_packed_nt_cols_avx2(int M, int N, int K, const float *A, ptrdiff_t lda, const float *Bp, float *C,
                            ptrdiff_t ldc, int accumulate, int j0, int j1);
void mm_nt_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W,
                    ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_nt_avx2(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W,
                ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_nt_bf16_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const uint16_t *W,
                         ptrdiff_t ldw, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_nt_i8_prepared_portable(int M, int N, int K, const int8_t *Aq, ptrdiff_t lda, const float *sa, const int8_t *P,
                                const float *sw, float *C, ptrdiff_t ldc, int accumulate, int nthreads);
void mm_nt_prepared_portable(int M, int N, int K, const float *A, ptrdiff_t lda, const void *P, int half, float *C,
                             ptrdiff_t ldc, int accumulate, int nthreads);   /* half: P is bfloat16 */

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
/* The mask of a masked AVX2 load or store of the first n of 8 floats (all for n >= 8, none for
 * n <= 0): gemm.c's kernels and optim.c's norm. */
__attribute__((target("avx2"), always_inline)) static inline __m256i mm_first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

#endif
