# cython: language_level=3
"""Hot kernels of the frame format (``msqcore.engine.frames``, layout in ``docs/frames.md``).

* ``FrameSource``: typed views over the columns (and sort keys) of an Arrow batch or of a
  frame, plus each row's size in bits ("cost"), so frames can be cut before writing them.
* ``encode_keys``: the sort-key bytes of every row (memcmp order == SQL order);
  ``key_offsets``: only their sizes, for sources with *lazy* keys.
* ``gather_frame``: write the rows ``(source[i], row[i])`` for i in [start, end) into one
  frame (a ``pa.Buffer`` from Arrow's pool), as many as fit in ``max_frame_size`` bytes.
  Encoding a batch (lazy keys encoded straight into the frame), spilling a sorted buffer
  and writing merged output are all this one gather.
* ``decode``: a frame as an Arrow RecordBatch over its own buffers, through the Arrow C
  data interface.
* ``frame_layout`` / ``check_frame``: header parsing with the cheap checks, and the O(n)
  checks of every offset, the checksum (XXH3-64) and the key order.
* ``key_prefix_lengths``: how many bytes of each key the first ``m`` key columns take (the
  bucket prefix of key statistics).

Style: validate and allocate under the GIL, one ``with nogil:`` section per pass, errors
reported through a flag and raised after the GIL is re-acquired. Every read of a buffer
goes through ``memcpy``, so nothing needs to be aligned.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer

import numpy as np
import pyarrow as pa

cdef extern from *:
    """
    #include <string.h>
    static inline uint64_t msq_bswap64(uint64_t x) { return __builtin_bswap64(x); }
    static inline uint32_t msq_bswap32(uint32_t x) { return __builtin_bswap32(x); }
    /* dst[j] = src[j] - base for j < n, int32, unaligned; restrict lets the compiler vectorize */
    __attribute__((noinline)) static void msq_rebase32(uint8_t *__restrict dst, const uint8_t *__restrict src, int64_t n, int32_t base) {
        for (int64_t j = 0; j < n; j++) {
            int32_t x;
            memcpy(&x, src + 4 * j, 4);
            x = (int32_t)((uint32_t)x - (uint32_t)base);
            memcpy(dst + 4 * j, &x, 4);
        }
    }

    /* XXH3-64 (xxHash 0.8, seed 0, the default secret); its low 32 bits are the frame
       checksum. Inputs up to 240 bytes take the short paths; longer ones 64-byte stripes
       over 8 lanes of 32x32->64 multiplies (the long loop below, in SIMD). */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static const uint64_t MSQ_P1 = 11400714785074694791ULL, MSQ_P2 = 14029467366897019727ULL,
                          MSQ_P3 = 1609587929392839161ULL, MSQ_P4 = 9650029242287828579ULL,
                          MSQ_P5 = 2870177450012600261ULL;
    static inline uint64_t msq_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
    static inline uint64_t msq_rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
    static inline uint32_t msq_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static const uint8_t MSQ_SECRET[192] = {
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    };
    static const uint32_t MSQ_Q1 = 0x9E3779B1U, MSQ_Q2 = 0x85EBCA77U, MSQ_Q3 = 0xC2B2AE3DU;
    static inline uint64_t msq_fold(uint64_t a, uint64_t b) {
        __uint128_t p = (__uint128_t)a * b;
        return (uint64_t)p ^ (uint64_t)(p >> 64);
    }
    static inline uint64_t msq_x3_avalanche(uint64_t h) {
        h ^= h >> 37; h *= 0x165667919E3779F9ULL; return h ^ (h >> 32);
    }
    static inline uint64_t msq_x64_avalanche(uint64_t h) {
        h ^= h >> 33; h *= MSQ_P2; h ^= h >> 29; h *= MSQ_P3; return h ^ (h >> 32);
    }
    static inline uint64_t msq_mix16(const uint8_t *p, const uint8_t *s) {
        return msq_fold(msq_rd64(p) ^ msq_rd64(s), msq_rd64(p + 8) ^ msq_rd64(s + 8));
    }
    /* The long-input loop (> 240 bytes), in 1024-byte blocks (16 stripes, then a scramble):
       ``msq_run_*`` does blocks [b0, b1) and, with ``tail``, the stripes after the last full
       block and the final 64 bytes. Running blocks as soon as their bytes are written hashes
       a frame while it is still in cache. Three loops: SSE2 (x86-64's baseline) or scalar,
       AVX2, AVX-512F; the best the CPU has is picked once. */
    enum { MSQ_BLOCK = 1024 };
    #if defined(__SSE2__)
    typedef __m128i msq_lane;       /* two of the 8 accumulators */
    static inline msq_lane msq_acc16(msq_lane acc, const uint8_t *p, const uint8_t *s) {
        __m128i d = _mm_loadu_si128((const __m128i *)p);
        __m128i k = _mm_xor_si128(d, _mm_loadu_si128((const __m128i *)s));
        __m128i prod = _mm_mul_epu32(k, _mm_shuffle_epi32(k, _MM_SHUFFLE(0, 3, 0, 1)));
        return _mm_add_epi64(prod, _mm_add_epi64(acc, _mm_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2))));
    }
    static inline msq_lane msq_scr16(msq_lane acc, const uint8_t *s) {
        __m128i q = _mm_set1_epi32((int)MSQ_Q1);
        __m128i k = _mm_xor_si128(_mm_xor_si128(acc, _mm_srli_epi64(acc, 47)), _mm_loadu_si128((const __m128i *)s));
        __m128i lo = _mm_mul_epu32(k, q);
        __m128i hi = _mm_mul_epu32(_mm_shuffle_epi32(k, _MM_SHUFFLE(0, 3, 0, 1)), q);
        return _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));
    }
    #else
    typedef struct { uint64_t v[2]; } msq_lane;
    static inline msq_lane msq_acc16(msq_lane acc, const uint8_t *p, const uint8_t *s) {
        for (int i = 0; i < 2; i++) {
            uint64_t d = msq_rd64(p + 8 * i), k = d ^ msq_rd64(s + 8 * i);
            acc.v[i ^ 1] += d;
            acc.v[i] += (uint64_t)(uint32_t)k * (k >> 32);
        }
        return acc;
    }
    static inline msq_lane msq_scr16(msq_lane acc, const uint8_t *s) {
        for (int i = 0; i < 2; i++) {
            uint64_t a = acc.v[i];
            a ^= a >> 47; a ^= msq_rd64(s + 8 * i); acc.v[i] = a * MSQ_Q1;
        }
        return acc;
    }
    #endif
    static void msq_run_base(uint64_t *acc, const uint8_t *p, size_t len, size_t b0, size_t b1, int tail) {
        const uint8_t *s = MSQ_SECRET;
        size_t n, i;
        msq_lane a[4];
        memcpy(a, acc, 64);
        #define MSQ_STRIPE(p, s) do { for (int j = 0; j < 4; j++) a[j] = msq_acc16(a[j], (p) + 16 * j, (s) + 16 * j); } while (0)
        for (n = b0; n < b1; n++) {
            for (i = 0; i < 16; i++) MSQ_STRIPE(p + n * MSQ_BLOCK + 64 * i, s + 8 * i);
            for (int j = 0; j < 4; j++) a[j] = msq_scr16(a[j], s + 128 + 16 * j);
        }
        if (tail) {
            for (i = 0; i < ((len - 1) - MSQ_BLOCK * b1) / 64; i++) MSQ_STRIPE(p + b1 * MSQ_BLOCK + 64 * i, s + 8 * i);
            MSQ_STRIPE(p + len - 64, s + 192 - 64 - 7);
        }
        memcpy(acc, a, 64);
    }
    static int msq_simd = -1;      /* 0: SSE2 or scalar, 1: AVX2, 2: AVX-512F */
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    __attribute__((target("avx2"))) static void msq_run_avx2(uint64_t *acc, const uint8_t *p, size_t len,
                                                             size_t b0, size_t b1, int tail) {
        const uint8_t *s = MSQ_SECRET;
        const __m256i q = _mm256_set1_epi32((int)MSQ_Q1);
        size_t n, i, j;
        __m256i a[2], k;
        a[0] = _mm256_loadu_si256((const __m256i *)acc); a[1] = _mm256_loadu_si256((const __m256i *)(acc + 4));
        #define MSQ_STRIPE256(p, s) do { for (int h = 0; h < 2; h++) { \
            __m256i d = _mm256_loadu_si256((const __m256i *)((p) + 32 * h)); \
            __m256i dk = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)((s) + 32 * h))); \
            a[h] = _mm256_add_epi64(_mm256_mul_epu32(dk, _mm256_shuffle_epi32(dk, _MM_SHUFFLE(0, 3, 0, 1))), \
                                    _mm256_add_epi64(a[h], _mm256_shuffle_epi32(d, _MM_SHUFFLE(1, 0, 3, 2)))); } } while (0)
        for (n = b0; n < b1; n++) {
            for (i = 0; i < 16; i++) MSQ_STRIPE256(p + n * MSQ_BLOCK + 64 * i, s + 8 * i);
            for (j = 0; j < 2; j++) {
                k = _mm256_xor_si256(_mm256_xor_si256(a[j], _mm256_srli_epi64(a[j], 47)),
                                     _mm256_loadu_si256((const __m256i *)(s + 128 + 32 * j)));
                a[j] = _mm256_add_epi64(_mm256_mul_epu32(k, q),
                                        _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(k, 32), q), 32));
            }
        }
        if (tail) {
            for (i = 0; i < ((len - 1) - MSQ_BLOCK * b1) / 64; i++) MSQ_STRIPE256(p + b1 * MSQ_BLOCK + 64 * i, s + 8 * i);
            MSQ_STRIPE256(p + len - 64, s + 192 - 64 - 7);
        }
        _mm256_storeu_si256((__m256i *)acc, a[0]); _mm256_storeu_si256((__m256i *)(acc + 4), a[1]);
    }
    __attribute__((target("avx512f"))) static void msq_run_avx512(uint64_t *acc, const uint8_t *p, size_t len,
                                                                   size_t b0, size_t b1, int tail) {
        const uint8_t *s = MSQ_SECRET;
        const __m512i q = _mm512_set1_epi32((int)MSQ_Q1);
        size_t n, i;
        __m512i a = _mm512_loadu_si512((const void *)acc), k;
        #define MSQ_STRIPE512(p, s) do { \
            __m512i d = _mm512_loadu_si512((const void *)(p)); \
            __m512i dk = _mm512_xor_si512(d, _mm512_loadu_si512((const void *)(s))); \
            a = _mm512_add_epi64(_mm512_mul_epu32(dk, _mm512_srli_epi64(dk, 32)), \
                                 _mm512_add_epi64(a, _mm512_shuffle_epi32(d, (_MM_PERM_ENUM)_MM_SHUFFLE(1, 0, 3, 2)))); \
        } while (0)
        for (n = b0; n < b1; n++) {
            for (i = 0; i < 16; i++) MSQ_STRIPE512(p + n * MSQ_BLOCK + 64 * i, s + 8 * i);
            k = _mm512_xor_si512(_mm512_xor_si512(a, _mm512_srli_epi64(a, 47)), _mm512_loadu_si512((const void *)(s + 128)));
            a = _mm512_add_epi64(_mm512_mul_epu32(k, q), _mm512_slli_epi64(_mm512_mul_epu32(_mm512_srli_epi64(k, 32), q), 32));
        }
        if (tail) {
            for (i = 0; i < ((len - 1) - MSQ_BLOCK * b1) / 64; i++) MSQ_STRIPE512(p + b1 * MSQ_BLOCK + 64 * i, s + 8 * i);
            MSQ_STRIPE512(p + len - 64, s + 192 - 64 - 7);
        }
        _mm512_storeu_si512((void *)acc, a);
    }
    #endif
    /* The XXH3 loop in use (the best the CPU has, at most ``cap`` when cap >= 0). */
    static int msq_simd_level(int cap) {
        msq_simd = 0;
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        msq_simd = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    #endif
        if (cap >= 0 && cap < msq_simd) msq_simd = cap;
        return msq_simd;
    }
    static void msq_run(uint64_t *acc, const uint8_t *p, size_t len, size_t b0, size_t b1, int tail) {
        if (msq_simd < 0) msq_simd_level(-1);
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (msq_simd == 2) { msq_run_avx512(acc, p, len, b0, b1, tail); return; }
        if (msq_simd == 1) { msq_run_avx2(acc, p, len, b0, b1, tail); return; }
    #endif
        msq_run_base(acc, p, len, b0, b1, tail);
    }
    /* Incremental XXH3 of ``len`` bytes at ``p`` (len known up front): ``msq_hash_upto``
       as bytes become final, ``msq_hash_end`` once all are. */
    typedef struct { uint64_t acc[8]; const uint8_t *p; size_t len, done; } msq_hash;
    static void msq_hash_begin(msq_hash *h, const uint8_t *p, size_t len) {
        const uint64_t init[8] = {MSQ_Q3, MSQ_P1, MSQ_P2, MSQ_P3, MSQ_P4, MSQ_Q2, MSQ_P5, MSQ_Q1};
        memcpy(h->acc, init, 64);
        h->p = p; h->len = len; h->done = 0;
    }
    static void msq_hash_upto(msq_hash *h, size_t final_bytes) {
        size_t blocks;
        if (h->len <= 240) return;
        blocks = (h->len - 1) / MSQ_BLOCK;
        if (final_bytes / MSQ_BLOCK < blocks) blocks = final_bytes / MSQ_BLOCK;
        if (blocks > h->done) { msq_run(h->acc, h->p, h->len, h->done, blocks, 0); h->done = blocks; }
    }
    static uint64_t msq_xxh3(const uint8_t *p, size_t len);
    static uint64_t msq_hash_end(msq_hash *h) {
        const uint8_t *s = MSQ_SECRET;
        uint64_t r = h->len * MSQ_P1;
        size_t i, blocks = (h->len - 1) / MSQ_BLOCK;
        if (h->len <= 240) return msq_xxh3(h->p, h->len);
        msq_run(h->acc, h->p, h->len, h->done, blocks, 1);
        for (i = 0; i < 4; i++)
            r += msq_fold(h->acc[2 * i] ^ msq_rd64(s + 11 + 16 * i), h->acc[2 * i + 1] ^ msq_rd64(s + 11 + 16 * i + 8));
        return msq_x3_avalanche(r);
    }
    /* memcpy(dst, src, len) into the hashed bytes of ``h``, with the hash of the whole
       blocks it fills computed from the copied registers (one read of the data instead of
       a copy, then a second pass to hash it). Every byte before ``dst`` must be final. Only
       with AVX-512F; otherwise a plain memcpy (``msq_hash_upto`` hashes the bytes later). */
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __attribute__((target("avx512f"))) static void msq_copy_run_avx512(uint64_t *acc, uint8_t *dst, const uint8_t *src,
                                                                        size_t nblocks, int rebase, int32_t base) {
        const uint8_t *s = MSQ_SECRET;
        const __m512i q = _mm512_set1_epi32((int)MSQ_Q1), bv = _mm512_set1_epi32(base);
        size_t n, i;
        __m512i a = _mm512_loadu_si512((const void *)acc), k, d, dk;
        for (n = 0; n < nblocks; n++) {
            for (i = 0; i < 16; i++) {
                d = _mm512_loadu_si512((const void *)(src + n * MSQ_BLOCK + 64 * i));
                if (rebase) d = _mm512_sub_epi32(d, bv);
                _mm512_storeu_si512((void *)(dst + n * MSQ_BLOCK + 64 * i), d);
                dk = _mm512_xor_si512(d, _mm512_loadu_si512((const void *)(s + 8 * i)));
                a = _mm512_add_epi64(_mm512_mul_epu32(dk, _mm512_srli_epi64(dk, 32)),
                                     _mm512_add_epi64(a, _mm512_shuffle_epi32(d, (_MM_PERM_ENUM)_MM_SHUFFLE(1, 0, 3, 2))));
            }
            k = _mm512_xor_si512(_mm512_xor_si512(a, _mm512_srli_epi64(a, 47)), _mm512_loadu_si512((const void *)(s + 128)));
            a = _mm512_add_epi64(_mm512_mul_epu32(k, q), _mm512_slli_epi64(_mm512_mul_epu32(_mm512_srli_epi64(k, 32), q), 32));
        }
        _mm512_storeu_si512((void *)acc, a);
    }
    #endif
    /* ``rebase``: int32 values, each minus ``base`` (``len`` a multiple of 4) */
    static void msq_copy_hash_as(msq_hash *h, uint8_t *dst, const uint8_t *src, size_t len, int rebase, int32_t base) {
        size_t start, b0, b1, nblocks, head, body;
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (msq_simd < 0) msq_simd_level(-1);
        if (msq_simd == 2 && h->len > 240 && len >= 4 * MSQ_BLOCK && dst >= h->p) {
            start = (size_t)(dst - h->p);
            nblocks = (h->len - 1) / MSQ_BLOCK;          /* the blocks before the tail */
            b0 = (start + MSQ_BLOCK - 1) / MSQ_BLOCK;
            b1 = (start + len) / MSQ_BLOCK;
            if (b1 > nblocks) b1 = nblocks;
            if (b1 > b0) {
                head = b0 * MSQ_BLOCK - start;       /* a multiple of 8: buffers are 8-aligned */
                if (rebase) msq_rebase32(dst, src, (int64_t)(head / 4), base); else memcpy(dst, src, head);
                msq_hash_upto(h, b0 * MSQ_BLOCK);
                if (h->done == b0) {
                    body = (b1 - b0) * MSQ_BLOCK;
                    msq_copy_run_avx512(h->acc, dst + head, src + head, b1 - b0, rebase, base);
                    h->done = b1;
                    head += body;
                }
                if (rebase) msq_rebase32(dst + head, src + head, (int64_t)((len - head) / 4), base);
                else memcpy(dst + head, src + head, len - head);
                return;
            }
        }
    #endif
        if (rebase) msq_rebase32(dst, src, (int64_t)(len / 4), base); else memcpy(dst, src, len);
    }
    static void msq_copy_hash(msq_hash *h, uint8_t *dst, const uint8_t *src, size_t len) {
        msq_copy_hash_as(h, dst, src, len, 0, 0);
    }
    static uint64_t msq_xxh3(const uint8_t *p, size_t len) {
        const uint8_t *s = MSQ_SECRET;
        uint64_t acc, end;
        size_t i;
        if (len == 0) return msq_x64_avalanche(msq_rd64(s + 56) ^ msq_rd64(s + 64));
        if (len <= 3) {
            uint32_t c = ((uint32_t)p[0] << 16) | ((uint32_t)p[len >> 1] << 24) | p[len - 1] | ((uint32_t)len << 8);
            return msq_x64_avalanche((uint64_t)c ^ (uint64_t)(msq_rd32(s) ^ msq_rd32(s + 4)));
        }
        if (len <= 8) {
            uint64_t in = msq_rd32(p + len - 4) + ((uint64_t)msq_rd32(p) << 32);
            uint64_t h = in ^ (msq_rd64(s + 8) ^ msq_rd64(s + 16));
            h ^= msq_rotl64(h, 49) ^ msq_rotl64(h, 24);
            h *= 0x9FB21C651E98DF25ULL; h ^= (h >> 35) + len; h *= 0x9FB21C651E98DF25ULL;
            return h ^ (h >> 28);
        }
        if (len <= 16) {
            uint64_t lo = msq_rd64(p) ^ (msq_rd64(s + 24) ^ msq_rd64(s + 32));
            uint64_t hi = msq_rd64(p + len - 8) ^ (msq_rd64(s + 40) ^ msq_rd64(s + 48));
            return msq_x3_avalanche(len + __builtin_bswap64(lo) + hi + msq_fold(lo, hi));
        }
        if (len <= 128) {
            acc = len * MSQ_P1;
            if (len > 32) {
                if (len > 64) {
                    if (len > 96) { acc += msq_mix16(p + 48, s + 96); acc += msq_mix16(p + len - 64, s + 112); }
                    acc += msq_mix16(p + 32, s + 64); acc += msq_mix16(p + len - 48, s + 80);
                }
                acc += msq_mix16(p + 16, s + 32); acc += msq_mix16(p + len - 32, s + 48);
            }
            acc += msq_mix16(p, s); acc += msq_mix16(p + len - 16, s + 16);
            return msq_x3_avalanche(acc);
        }
        if (len <= 240) {
            acc = len * MSQ_P1;
            for (i = 0; i < 8; i++) acc += msq_mix16(p + 16 * i, s + 16 * i);
            end = msq_mix16(p + len - 16, s + 136 - 17);
            acc = msq_x3_avalanche(acc);
            for (i = 8; i < len / 16; i++) end += msq_mix16(p + 16 * i, s + 16 * (i - 8) + 3);
            return msq_x3_avalanche(acc + end);
        }
        msq_hash h;
        msq_hash_begin(&h, p, len);
        return msq_hash_end(&h);
    }
    """
    uint64_t msq_bswap64(uint64_t x) noexcept nogil
    uint32_t msq_bswap32(uint32_t x) noexcept nogil
    void msq_rebase32(uint8_t* dst, const uint8_t* src, int64_t n, int32_t base) noexcept nogil
    uint64_t msq_xxh3(const uint8_t* p, size_t n) noexcept nogil
    int msq_simd_level(int cap) noexcept nogil
    ctypedef struct msq_hash:
        size_t done
    void msq_hash_begin(msq_hash* h, const uint8_t* p, size_t len) noexcept nogil
    void msq_hash_upto(msq_hash* h, size_t final_bytes) noexcept nogil
    uint64_t msq_hash_end(msq_hash* h) noexcept nogil
    void msq_copy_hash(msq_hash* h, uint8_t* dst, const uint8_t* src, size_t len) noexcept nogil
    void msq_copy_hash_as(msq_hash* h, uint8_t* dst, const uint8_t* src, size_t len, int rebase, int32_t base) noexcept nogil


# Sort keys of the common key columns (LONG, DOUBLE, FLOAT, STRING without 0x00 bytes, any
# of them nullable), a block of rows at a time: (1) every column's position in every row
# from the row sizes, (2) the strings, row by row, each copied as 32 bytes at once when it
# is short (the bytes past its end belong to later columns or rows, written after it),
# (3) the fixed columns, one branch-free loop per column.
cdef extern from *:
    """
    enum { MSQ_KL = 0, MSQ_KD = 1, MSQ_KF = 2, MSQ_KS = 3, MSQ_KB = 512 };
    typedef struct {
        int op;                  /* MSQ_KL (LONG), MSQ_KD (DOUBLE), MSQ_KF (FLOAT), MSQ_KS (STRING) */
        uint8_t x;               /* 0x00 ascending, 0xFF descending (every byte inverted) */
        uint64_t mask;           /* x in all 8 bytes */
        const uint8_t *validity; /* NULL: no nulls */
        int64_t vbit;
        const uint8_t *values;   /* fixed: row 0's value */
        const uint8_t *offsets;  /* STRING: row 0's int32 offset */
        const uint8_t *data;
        int64_t data_len;        /* bytes readable at ``data`` (over-reads stay below) */
    } msq_kcol;
    static inline int msq_kvalid(const msq_kcol *c, int64_t i) {
        int64_t b = c->vbit + i;
        return c->validity == NULL || ((c->validity[b >> 3] >> (b & 7)) & 1);
    }
    static inline int64_t msq_ld32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
    static inline int64_t msq_kwidth(const msq_kcol *c) { return c->op == MSQ_KF ? 5 : 9; }
    /* offs[j + 1] = offs[j] + the key bytes of row i0 + j (offs[0] is given): one pass per
       column, the null-free ones without a dependency between rows */
    static void msq_key_sizes(const msq_kcol *cols, int nk, int64_t i0, int64_t n, int64_t *__restrict offs) {
        int64_t j, fixed = 0, o0 = offs[0], run, b;
        int k;
        for (k = 0; k < nk; k++)
            if (cols[k].op != MSQ_KS && cols[k].validity == NULL) fixed += msq_kwidth(&cols[k]);
        for (j = 0; j < n; j++) offs[j + 1] = o0 + fixed * (j + 1);
        for (k = 0; k < nk; k++) {
            const msq_kcol *c = &cols[k];
            const uint8_t *o = c->offsets + 4 * i0;
            if (c->op == MSQ_KS && c->validity == NULL) {
                b = msq_ld32(o);
                for (j = 0; j < n; j++) offs[j + 1] += 3 * (j + 1) + msq_ld32(o + 4 * (j + 1)) - b;
            } else if (c->op == MSQ_KS) {
                for (j = 0, run = 0; j < n; j++) {
                    run += msq_kvalid(c, i0 + j) ? 3 + msq_ld32(o + 4 * (j + 1)) - msq_ld32(o + 4 * j) : 1;
                    offs[j + 1] += run;
                }
            } else if (c->validity != NULL) {
                for (j = 0, run = 0; j < n; j++) {
                    run += msq_kvalid(c, i0 + j) ? msq_kwidth(c) : 1;
                    offs[j + 1] += run;
                }
            }
        }
    }
    static inline uint64_t msq_kdouble(const uint8_t *p) {
        double d; uint64_t bits;
        memcpy(&d, p, 8);
        if (d != d) bits = 0x7FF8000000000000ULL;
        else if (d == 0.0) bits = 0;
        else memcpy(&bits, &d, 8);
        return (bits >> 63) ? ~bits : bits | 0x8000000000000000ULL;
    }
    static inline uint32_t msq_kfloat(const uint8_t *p) {
        float f; uint32_t bits;
        memcpy(&f, p, 4);
        if (f != f) bits = 0x7FC00000U;
        else if (f == 0.0f) bits = 0;
        else memcpy(&bits, &f, 4);
        return (bits >> 31) ? ~bits : bits | 0x80000000U;
    }
    static inline void msq_kput(uint8_t *p, uint64_t a, uint64_t m) { a ^= m; memcpy(p, &a, 8); }
    static inline uint64_t msq_kget(const uint8_t *p) { uint64_t a; memcpy(&a, p, 8); return a; }
    /* One string value at ``p`` (its position, ``at``, in ``out`` of ``out_len`` bytes). */
    static inline void msq_kstring(const msq_kcol *c, int64_t i, uint8_t *out, int64_t at, int64_t out_len) {
        uint8_t *p = out + at, *d = p + 1, x = c->x;
        int64_t s, ln, q;
        const uint8_t *src;
        if (!msq_kvalid(c, i)) { p[0] = x; return; }
        s = msq_ld32(c->offsets + 4 * i);
        ln = msq_ld32(c->offsets + 4 * i + 4) - s;
        src = c->data + s;
        p[0] = 0x01 ^ x;
        if (ln <= 32 && s + 32 <= c->data_len && at + 33 <= out_len) {
            uint64_t a = msq_kget(src), b = msq_kget(src + 8), e = msq_kget(src + 16), f = msq_kget(src + 24);
            msq_kput(d, a, c->mask); msq_kput(d + 8, b, c->mask);
            msq_kput(d + 16, e, c->mask); msq_kput(d + 24, f, c->mask);
        } else if (x) {
            for (q = 0; q < ln; q++) d[q] = (uint8_t)~src[q];
        } else {
            memcpy(d, src, (size_t)ln);
        }
        d[ln] = x;
        d[ln + 1] = x;
    }
    /* ``msq_key_write`` when no column has nulls and at most one is a STRING: every column's
       position follows from the row's start (columns before the string) or end (after it),
       so the passes need no position arrays. Returns 1 when a row's size disagrees. */
    static int msq_key_write_direct(const msq_kcol *cols, int nk, int64_t i0, int64_t n, uint8_t *__restrict out,
                                    int64_t out_len, const int64_t *starts) {
        int64_t j, j0, nb, i, base = starts[0], fixed = 0, pre = 0, at;
        int k, s = -1;
        for (k = 0; k < nk; k++) {
            if (cols[k].op == MSQ_KS) s = k;
            else fixed += msq_kwidth(&cols[k]);
        }
        for (j0 = 0; j0 < n; j0 += MSQ_KB) {
            nb = n - j0 < MSQ_KB ? n - j0 : MSQ_KB;
            if (s >= 0) {
                const msq_kcol *c = &cols[s];
                const uint8_t *o = c->offsets + 4 * (i0 + j0);
                for (k = 0, pre = 0; k < s; k++) pre += msq_kwidth(&cols[k]);
                for (j = 0; j < nb; j++)
                    if (starts[j0 + j + 1] - starts[j0 + j] != fixed + 3 + msq_ld32(o + 4 * j + 4) - msq_ld32(o + 4 * j))
                        return 1;
                for (j = 0; j < nb; j++) msq_kstring(c, i0 + j0 + j, out, starts[j0 + j] - base + pre, out_len);
            } else {
                for (j = 0; j < nb; j++)
                    if (starts[j0 + j + 1] - starts[j0 + j] != fixed) return 1;
            }
            for (k = 0, pre = 0; k < nk; k++) {
                const msq_kcol *c = &cols[k];
                const uint8_t *v = c->values;
                const int64_t *st;
                uint8_t m1 = 0x01 ^ c->x;
                uint64_t mask = c->mask, u;
                uint32_t u4;
                int64_t w = msq_kwidth(c);
                if (k == s) { pre = 0; continue; }
                /* before the string: from the row's start; after it: back from the row's end */
                if (s < 0 || k < s) { st = starts + j0; at = pre - base; }
                else { int64_t suf = 0; int q; for (q = k; q < nk; q++) suf += msq_kwidth(&cols[q]); st = starts + j0 + 1; at = -suf - base; }
                if (c->op == MSQ_KL) {
                    for (j = 0; j < nb; j++) {
                        uint8_t *p = out + st[j] + at;
                        i = i0 + j0 + j;
                        u = __builtin_bswap64(msq_kget(v + 8 * i) ^ 0x8000000000000000ULL) ^ mask;
                        p[0] = m1; memcpy(p + 1, &u, 8);
                    }
                } else if (c->op == MSQ_KD) {
                    for (j = 0; j < nb; j++) {
                        uint8_t *p = out + st[j] + at;
                        i = i0 + j0 + j;
                        u = __builtin_bswap64(msq_kdouble(v + 8 * i)) ^ mask;
                        p[0] = m1; memcpy(p + 1, &u, 8);
                    }
                } else {
                    for (j = 0; j < nb; j++) {
                        uint8_t *p = out + st[j] + at;
                        i = i0 + j0 + j;
                        u4 = __builtin_bswap32(msq_kfloat(v + 4 * i)) ^ (uint32_t)mask;
                        p[0] = m1; memcpy(p + 1, &u4, 4);
                    }
                }
                pre += w;
            }
        }
        return 0;
    }
    /* Keys of rows i0..i0+n-1 into out[0..out_len): row j's key is
       [starts[j] - starts[0], starts[j + 1] - starts[0]). ``scratch`` holds (nk + 1) *
       MSQ_KB int64. Returns 0, or -1 when a row's bytes disagree with ``starts`` (a sizing
       bug, not bad input). */
    static int msq_key_write(const msq_kcol *cols, int nk, int64_t i0, int64_t n, uint8_t *__restrict out,
                             int64_t out_len, const int64_t *starts, int64_t *__restrict scratch) {
        int64_t *cur = scratch, *pos, j, j0, nb, i, base = starts[0];
        int k, strings = 0, nullable = 0;
        for (k = 0; k < nk; k++) {
            strings += cols[k].op == MSQ_KS;
            nullable += cols[k].validity != NULL;
        }
        if (strings <= 1 && nullable == 0)
            return msq_key_write_direct(cols, nk, i0, n, out, out_len, starts) ? -1 : 0;
        for (j0 = 0; j0 < n; j0 += MSQ_KB) {
            nb = n - j0 < MSQ_KB ? n - j0 : MSQ_KB;
            for (j = 0; j < nb; j++) cur[j] = starts[j0 + j] - base;
            for (k = 0; k < nk; k++) {          /* (1) positions */
                const msq_kcol *c = &cols[k];
                int64_t w = msq_kwidth(c);
                pos = scratch + MSQ_KB * (k + 1);
                if (c->op == MSQ_KS) {
                    const uint8_t *o = c->offsets + 4 * (i0 + j0);
                    for (j = 0; j < nb; j++) {
                        pos[j] = cur[j];
                        cur[j] += msq_kvalid(c, i0 + j0 + j) ? 3 + msq_ld32(o + 4 * j + 4) - msq_ld32(o + 4 * j) : 1;
                    }
                } else if (c->validity == NULL) {
                    for (j = 0; j < nb; j++) { pos[j] = cur[j]; cur[j] += w; }
                } else {
                    for (j = 0; j < nb; j++) { pos[j] = cur[j]; cur[j] += msq_kvalid(c, i0 + j0 + j) ? w : 1; }
                }
            }
            for (j = 0; j < nb; j++)
                if (cur[j] != starts[j0 + j + 1] - base) return -1;
            if (strings == 1) {                  /* (2) strings, in row order */
                for (k = 0; cols[k].op != MSQ_KS; k++) {}
                pos = scratch + MSQ_KB * (k + 1);
                for (j = 0; j < nb; j++) msq_kstring(&cols[k], i0 + j0 + j, out, pos[j], out_len);
            } else if (strings > 1) {
                for (j = 0; j < nb; j++)
                    for (k = 0; k < nk; k++)
                        if (cols[k].op == MSQ_KS)
                            msq_kstring(&cols[k], i0 + j0 + j, out, scratch[MSQ_KB * (k + 1) + j], out_len);
            }
            for (k = 0; k < nk; k++) {          /* (3) fixed columns */
                const msq_kcol *c = &cols[k];
                const uint8_t *v = c->values;
                uint8_t m1 = 0x01 ^ c->x, x = c->x;
                uint64_t mask = c->mask;
                pos = scratch + MSQ_KB * (k + 1);
                if (c->op == MSQ_KS) continue;
                for (j = 0; j < nb; j++) {
                    uint8_t *p = out + pos[j];
                    uint64_t u;
                    uint32_t u4;
                    i = i0 + j0 + j;
                    if (c->validity != NULL && !msq_kvalid(c, i)) { p[0] = x; continue; }
                    p[0] = m1;
                    if (c->op == MSQ_KL) {
                        u = __builtin_bswap64(msq_kget(v + 8 * i) ^ 0x8000000000000000ULL) ^ mask;
                        memcpy(p + 1, &u, 8);
                    } else if (c->op == MSQ_KD) {
                        u = __builtin_bswap64(msq_kdouble(v + 8 * i)) ^ mask;
                        memcpy(p + 1, &u, 8);
                    } else {
                        u4 = __builtin_bswap32(msq_kfloat(v + 4 * i)) ^ (uint32_t)mask;
                        memcpy(p + 1, &u4, 4);
                    }
                }
            }
        }
        return 0;
    }
    """
    enum:
        MSQ_KL
        MSQ_KD
        MSQ_KF
        MSQ_KS
        MSQ_KB
    ctypedef struct msq_kcol:
        int op
        uint8_t x
        uint64_t mask
        const uint8_t* validity
        int64_t vbit
        const uint8_t* values
        const uint8_t* offsets
        const uint8_t* data
        int64_t data_len
    void msq_key_sizes(const msq_kcol* cols, int nk, int64_t i0, int64_t n, int64_t* offs) noexcept nogil
    int msq_key_write(const msq_kcol* cols, int nk, int64_t i0, int64_t n, uint8_t* out, int64_t out_len,
                      const int64_t* starts, int64_t* scratch) noexcept nogil


cdef object pool_empty(Py_ssize_t n, object dtype):
    """An uninitialized 1-d numpy array in Arrow's memory pool, which reuses freed pages
    (large glibc blocks come back as fresh memory that page-faults on every first write)."""
    dtype = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype=dtype)


cdef inline object u8(object buf):
    """An unsigned-byte view of any bytes-like object (``pa.Buffer`` exports signed chars)."""
    return memoryview(buf).cast("B")


def xxh3_simd(int cap=-1):
    """Pick XXH3's loop again: the best the CPU has (2 AVX-512F, 1 AVX2, 0 SSE2 or scalar),
    at most ``cap`` when it is >= 0 (tests use this to check every loop). Returns the level."""
    return msq_simd_level(cap)


def xxh3(buf):
    """XXH3-64 (seed 0) of the bytes of ``buf``."""
    cdef const uint8_t[::1] data = u8(buf)
    cdef uint64_t h
    with nogil:
        h = msq_xxh3(&data[0] if data.shape[0] > 0 else NULL, <size_t>data.shape[0])
    return h


def find_byte(buf, int value, Py_ssize_t start=0, Py_ssize_t stop=-1):
    """Offset of the first byte ``value`` in ``buf[start:stop]`` (``stop`` -1: the end), or -1.
    One ``memchr``: the NUL check of string columns (Druid's ``InvalidNullByte``)."""
    cdef const uint8_t[::1] data = u8(buf)
    cdef Py_ssize_t n = data.shape[0]
    cdef const void* hit
    if stop < 0 or stop > n:
        stop = n
    if start < 0 or start >= stop:
        return -1
    with nogil:
        hit = memchr(&data[start], value, <size_t>(stop - start))
    return -1 if hit == NULL else <Py_ssize_t>(<const uint8_t*>hit - &data[0])


cdef inline uint32_t frame_checksum(const uint8_t* p, int64_t n) noexcept nogil:
    """The checksum of a frame's bytes after the header: the low 32 bits of XXH3-64."""
    return <uint32_t>msq_xxh3(p, <size_t>n)


def checksum(buf):
    """The frame checksum of ``buf`` (a frame's bytes after its 32-byte header)."""
    cdef const uint8_t[::1] data = u8(buf)
    cdef uint32_t h
    with nogil:
        h = frame_checksum(&data[0] if data.shape[0] > 0 else NULL, data.shape[0])
    return h


cdef enum:
    HDR = 32            # header bytes
    VERSION = 2         # 2: XXH3 checksum (1 had XXH64)
    KEY_BLOCK = 512     # rows per block of the column-at-a-time key writer
    F_HAS_KEY = 1       # frame flags
    F_SORTED = 2

MAGIC = b"MSQF"
FORMAT_VERSION = VERSION
HEADER_SIZE = HDR
FLAG_HAS_KEY = F_HAS_KEY
FLAG_SORTED = F_SORTED

cdef uint64_t SIGN64 = 0x8000000000000000ULL
cdef uint32_t SIGN32 = 0x80000000U
cdef int64_t BUFFER_SLACK = 12     # per buffer: alignment (<= 7) + ceil of a bitmap or offsets[0]

# Key bytes: scalar null / value; list null / value, then elements, then the end marker.
cdef uint8_t K_NULL = 0x00
cdef uint8_t K_VALUE = 0x01
cdef uint8_t K_END = 0x01
cdef uint8_t K_ELEM_NULL = 0x02
cdef uint8_t K_ELEM_VALUE = 0x03


# --- small helpers ----------------------------------------------------------------------------

cdef inline int64_t pad8(int64_t n) noexcept nogil:
    return (n + 7) & ~(<int64_t>7)


cdef inline int64_t ld_off(const uint8_t* p, bint large, int64_t i) noexcept nogil:
    cdef int32_t a
    cdef int64_t b
    if large:
        memcpy(&b, p + 8 * i, 8)
        return b
    memcpy(&a, p + 4 * i, 4)
    return a


cdef inline void st_i32(uint8_t* p, int64_t i, int64_t v) noexcept nogil:
    cdef int32_t a = <int32_t>v
    memcpy(p + 4 * i, &a, 4)


cdef inline uint32_t ld_u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t ld_u16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline void st_u32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef inline void st_u16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define MSQ_PREFETCH(p) __builtin_prefetch((const void*)(p))
    #else
    #define MSQ_PREFETCH(p) ((void)0)
    #endif
    """
    void MSQ_PREFETCH(const void* p) noexcept nogil

# Rows ahead whose bytes a gather asks the CPU for early: its rows sit at random places of
# the sources, and a cache miss per row and column is what a sorted gather costs.
DEF PREFETCH_ROWS = 16


cdef inline void copy_small(uint8_t* d, const uint8_t* s, int64_t n) noexcept nogil:
    """``memcpy`` for short strings without a library call: two overlapping loads and stores
    cover any length in [4, 32], exactly (nothing past ``d + n`` is written)."""
    cdef uint64_t a, b, c, e
    cdef uint32_t x, y
    cdef int64_t i
    if n > 32:
        memcpy(d, s, <size_t>n)
    elif n > 16:
        memcpy(&a, s, 8)
        memcpy(&b, s + 8, 8)
        memcpy(&c, s + n - 16, 8)
        memcpy(&e, s + n - 8, 8)
        memcpy(d, &a, 8)
        memcpy(d + 8, &b, 8)
        memcpy(d + n - 16, &c, 8)
        memcpy(d + n - 8, &e, 8)
    elif n >= 8:
        memcpy(&a, s, 8)
        memcpy(&b, s + n - 8, 8)
        memcpy(d, &a, 8)
        memcpy(d + n - 8, &b, 8)
    elif n >= 4:
        memcpy(&x, s, 4)
        memcpy(&y, s + n - 4, 4)
        memcpy(d, &x, 4)
        memcpy(d + n - 4, &y, 4)
    else:
        for i in range(n):
            d[i] = s[i]


cdef inline bint row_valid(const ColView* c, int64_t i) noexcept nogil:
    cdef int64_t b
    if c.validity == NULL:
        return True
    b = c.vbit + i
    return (c.validity[b >> 3] >> (b & 7)) & 1


cdef inline bint elem_valid(const ColView* c, int64_t e) noexcept nogil:
    cdef int64_t b
    if c.cvalidity == NULL:
        return True
    b = c.cvbit + e
    return (c.cvalidity[b >> 3] >> (b & 7)) & 1


cdef inline void set_bit(uint8_t* bm, int64_t j) noexcept nogil:
    bm[j >> 3] |= <uint8_t>(1 << (j & 7))


cdef inline bint is_fixed(int t) noexcept nogil:
    return t == FT_LONG or t == FT_FLOAT or t == FT_DOUBLE


cdef inline bint is_fixed_list(int t) noexcept nogil:
    return t == FT_LONG_ARRAY or t == FT_FLOAT_ARRAY or t == FT_DOUBLE_ARRAY


cdef inline bint is_string_list(int t) noexcept nogil:
    return t == FT_MV_STRING or t == FT_STRING_ARRAY


cdef inline int type_width(int t) noexcept nogil:
    if t == FT_LONG or t == FT_DOUBLE or t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
        return 8
    if t == FT_FLOAT or t == FT_FLOAT_ARRAY:
        return 4
    return 0


cdef inline int type_buffers(int t) noexcept nogil:
    if is_fixed(t) or t == FT_KEY:
        return 2
    if t == FT_STRING:
        return 3
    if is_fixed_list(t):
        return 4
    if is_string_list(t):
        return 5
    return 0


def buffer_count(int column_type):
    """Buffers a column of ``column_type`` has in a frame (0 for an unknown type)."""
    return type_buffers(column_type)


def frame_overhead(Py_ssize_t schema_len, Py_ssize_t num_buffers):
    """Upper bound of the bytes a frame needs besides its rows' bits (header, schema, directory, slack)."""
    return HDR + pad8(schema_len) + pad8(8 * num_buffers) + BUFFER_SLACK * num_buffers


# --- row costs --------------------------------------------------------------------------------

cdef inline int64_t row_cost(const ColView* c, int64_t i) noexcept nogil:
    """Bits row ``i`` adds to a frame: an upper bound consistent with ``gather_frame``."""
    cdef int t = c.type
    cdef int64_t s, e, x, cost, a, b
    if is_fixed(t):
        return 1 + 8 * c.width
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_KEY:
        return 32 + 8 * (e - s)
    if not row_valid(c, i):
        return 33
    if t == FT_STRING:
        return 33 + 8 * (e - s)
    if is_fixed_list(t):
        return 33 + (e - s) * (1 + 8 * c.width)
    cost = 33
    for x in range(s, e):
        cost += 33
        if elem_valid(c, x):
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            cost += 8 * (b - a)
    return cost


cdef void add_costs(const ColView* c, int64_t n, int64_t* out) noexcept nogil:
    """out[i] += row_cost(c, i) for a variable-size column; tight loops for strings and keys."""
    cdef int64_t i, base, prev, cur, bit
    if c.type == FT_STRING and c.validity != NULL:
        # a null row costs 33 bits whatever its offsets say (Arrow may leave bytes under it)
        prev = ld_off(c.offsets, c.large, 0)
        for i in range(n):
            cur = ld_off(c.offsets, c.large, i + 1)
            bit = c.vbit + i
            out[i] += 33 + ((c.validity[bit >> 3] >> (bit & 7)) & 1) * 8 * (cur - prev)
            prev = cur
        return
    if c.type == FT_KEY or c.type == FT_STRING:
        base = 32 if c.type == FT_KEY else 33          # an int32 offset (+ a validity bit)
        prev = ld_off(c.offsets, c.large, 0)
        if c.large:
            for i in range(n):
                cur = ld_off(c.offsets, True, i + 1)
                out[i] += base + 8 * (cur - prev)
                prev = cur
        else:
            for i in range(n):
                cur = ld_off(c.offsets, False, i + 1)
                out[i] += base + 8 * (cur - prev)
                prev = cur
        return
    for i in range(n):
        out[i] += row_cost(c, i)


cdef inline bint range_costable(const ColView* c) noexcept nogil:
    """Whether ``range_cost`` gives the exact sum of ``row_cost`` (no null rows or elements
    that would make a row cost less than its offsets say)."""
    return (is_fixed(c.type) or c.type == FT_KEY
            or (c.validity == NULL and (not is_string_list(c.type) or c.cvalidity == NULL)))


cdef inline int64_t range_cost(const ColView* c, int64_t i0, int64_t i1) noexcept nogil:
    """The sum of ``row_cost(c, i)`` over rows [i0, i1), from the offsets (``range_costable``)."""
    cdef int t = c.type
    cdef int64_t n = i1 - i0, e0, e1
    if is_fixed(t):
        return n * (1 + 8 * c.width)
    e0 = ld_off(c.offsets, c.large, i0)
    e1 = ld_off(c.offsets, c.large, i1)
    if t == FT_KEY:
        return 32 * n + 8 * (e1 - e0)
    if t == FT_STRING:
        return 33 * n + 8 * (e1 - e0)
    if is_fixed_list(t):
        return 33 * n + (e1 - e0) * (1 + 8 * c.width)
    return 33 * n + 33 * (e1 - e0) + 8 * (ld_off(c.coffsets, c.clarge, e1) - ld_off(c.coffsets, c.clarge, e0))


cdef int64_t range_stop(const ColView* cols, Py_ssize_t ncv, int64_t start, int64_t end, int64_t budget) noexcept nogil:
    """The largest ``stop`` in [start, end] whose rows [start, stop) cost at most ``budget``
    bits (a binary search: the cost only grows with ``stop``)."""
    cdef int64_t lo = start, hi = end, mid, cost
    cdef Py_ssize_t c
    if budget < 0:
        return start
    while lo < hi:
        mid = hi - (hi - lo) // 2
        cost = 0
        for c in range(ncv):
            cost += range_cost(&cols[c], start, mid)
        if cost <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


cdef class FrameSource:
    """Column views of one batch or frame (see ``_frame.pxd``).

    Build one with ``FrameSource(num_rows, num_columns, has_key)`` and ``set_column`` /
    ``set_key`` (Arrow buffers, by address), then ``finalize()``; or with ``from_frame(buf)``.
    """

    def __cinit__(self, Py_ssize_t num_rows, Py_ssize_t num_columns, bint has_key):
        if num_rows < 0 or num_columns < 0:
            raise ValueError("negative row or column count")
        self.num_rows = num_rows
        self.num_columns = num_columns
        self.has_key = has_key
        self.sorted = False
        self._owners = []
        self.costs = None
        self.cost_ptr = NULL
        self.cols = <ColView*>malloc(sizeof(ColView) * (num_columns + 1))
        if self.cols == NULL:
            raise MemoryError()
        memset(self.cols, 0, sizeof(ColView) * (num_columns + 1))

    def __dealloc__(self):
        free(self.cols)

    def set_column(self, Py_ssize_t i, int column_type, object owner,
                   uintptr_t validity, int64_t vbit, uintptr_t values, uintptr_t offsets,
                   bint large, uintptr_t data, uintptr_t cvalidity=0, int64_t cvbit=0,
                   uintptr_t cvalues=0, uintptr_t coffsets=0, bint clarge=False, uintptr_t cdata=0):
        """Point column ``i`` at buffers (addresses, 0 = none) already advanced to row 0.

        ``owner`` is kept alive as long as this source. Only for trusted (Arrow-validated) memory.
        """
        cdef ColView* c
        if i < 0 or i >= self.num_columns:
            raise IndexError(f"column {i} out of range")
        if type_buffers(column_type) == 0 or column_type == FT_KEY:
            raise ValueError(f"unknown column type {column_type}")
        self._owners.append(owner)
        c = &self.cols[i]
        c.type = column_type
        c.width = type_width(column_type)
        c.validity = <const uint8_t*>validity
        c.vbit = vbit
        c.values = <const uint8_t*>values
        c.offsets = <const uint8_t*>offsets
        c.large = large
        c.data = <const uint8_t*>data
        c.cvalidity = <const uint8_t*>cvalidity
        c.cvbit = cvbit
        c.cvalues = <const uint8_t*>cvalues
        c.coffsets = <const uint8_t*>coffsets
        c.clarge = clarge
        c.cdata = <const uint8_t*>cdata

    def set_key(self, object owner, uintptr_t offsets, bint large, uintptr_t data):
        """Point the key column at ``offsets`` (int32 or int64, row 0's entry) and ``data``."""
        cdef ColView* c
        if not self.has_key:
            raise ValueError("this source has no key column")
        self._owners.append(owner)
        c = &self.cols[self.num_columns]
        c.type = FT_KEY
        c.width = 0
        c.offsets = <const uint8_t*>offsets
        c.large = large
        c.data = <const uint8_t*>data

    def finalize(self, bint costs=True):
        """Check every column (and the key) is set; compute the row costs unless ``costs``
        is False (``gather_frame`` then computes them when it needs them: a single source
        written in order and without nulls is cut from its offsets alone)."""
        cdef Py_ssize_t i
        for i in range(self.num_columns + (1 if self.has_key else 0)):
            if self.cols[i].type == 0:
                raise ValueError(f"column {i} was never set")
        if costs:
            self._compute_costs()
        return self

    cdef int _compute_costs(self) except -1:
        cdef:
            Py_ssize_t n = self.num_rows
            Py_ssize_t ncol = self.num_columns + (1 if self.has_key else 0)
            Py_ssize_t c
            int64_t fixed = 0
            int64_t[::1] out
            const ColView* v
        arr = pool_empty(n, dtype=np.int64)
        out = arr
        if n > 0:
            with nogil:
                memset(&out[0], 0, sizeof(int64_t) * n)
                for c in range(ncol):
                    v = &self.cols[c]
                    if is_fixed(v.type):
                        fixed += row_cost(v, 0)
                    else:
                        add_costs(v, n, &out[0])
                if fixed:
                    for c in range(n):
                        out[c] += fixed
        self.costs = arr
        self.cost_ptr = &out[0] if n > 0 else NULL
        return 0

    @staticmethod
    def from_frame(buf):
        """Views over a frame (``bytes`` or any buffer), after the cheap header checks."""
        cdef const uint8_t[::1] mv = u8(buf)
        cdef const uint8_t* base = &mv[0] if mv.shape[0] > 0 else <const uint8_t*>b""
        cdef FrameSource src
        cdef ColView* c
        cdef Section sec
        cdef Py_ssize_t col, b, ncols, dpos
        cdef int64_t n
        cdef int t, flags
        sec = parse_layout(base, mv.shape[0], &n, &flags, &dpos)
        ncols = sec.ncols
        src = FrameSource(n, ncols, bool(flags & F_HAS_KEY))
        src.sorted = bool(flags & F_SORTED)
        src._owners.append(buf)
        b = 0
        for col in range(ncols + (1 if src.has_key else 0)):
            t = sec.tcodes[col] if col < ncols else FT_KEY
            c = &src.cols[col]
            c.type = t
            c.width = type_width(t)
            if t == FT_KEY:
                c.offsets = base + dir_off(base, dpos, b)
                c.data = base + dir_off(base, dpos, b + 1)
            else:
                c.validity = base + dir_off(base, dpos, b) if dir_len(base, dpos, b) else NULL
                if is_fixed(t):
                    c.values = base + dir_off(base, dpos, b + 1)
                else:
                    c.offsets = base + dir_off(base, dpos, b + 1)
                    if t == FT_STRING:
                        c.data = base + dir_off(base, dpos, b + 2)
                    else:
                        c.cvalidity = base + dir_off(base, dpos, b + 2) if dir_len(base, dpos, b + 2) else NULL
                        if is_fixed_list(t):
                            c.cvalues = base + dir_off(base, dpos, b + 3)
                        else:
                            c.coffsets = base + dir_off(base, dpos, b + 3)
                            c.cdata = base + dir_off(base, dpos, b + 4)
            b += type_buffers(t)
        src._compute_costs()
        return src


# --- sort keys --------------------------------------------------------------------------------

cdef inline int64_t esc_len(const uint8_t* p, int64_t n) noexcept nogil:
    """Bytes of an escaped string: every 0x00 becomes 0x00 0xFF, then the 0x00 0x00 terminator."""
    cdef int64_t zeros = 0
    cdef const uint8_t* s = p
    cdef const uint8_t* end = p + n
    cdef const void* q
    while s < end:
        q = memchr(s, 0, <size_t>(end - s))
        if q == NULL:
            break
        zeros += 1
        s = <const uint8_t*>q + 1
    return n + zeros + 2


cdef inline int64_t esc_write(uint8_t* out, const uint8_t* p, int64_t n) noexcept nogil:
    cdef int64_t pos = 0, run
    cdef const uint8_t* s = p
    cdef const uint8_t* end = p + n
    cdef const void* q
    while s < end:
        q = memchr(s, 0, <size_t>(end - s))
        if q == NULL:
            memcpy(out + pos, s, <size_t>(end - s))
            pos += end - s
            break
        run = <const uint8_t*>q - s
        memcpy(out + pos, s, <size_t>run)
        pos += run
        out[pos] = 0x00
        out[pos + 1] = 0xFF
        pos += 2
        s = <const uint8_t*>q + 1
    out[pos] = 0x00
    out[pos + 1] = 0x00
    return pos + 2


cdef inline uint64_t long_bits(int64_t v) noexcept nogil:
    return (<uint64_t>v) ^ SIGN64


cdef inline uint64_t double_bits(double d) noexcept nogil:
    """Order-preserving bits: -inf < ... < -0.0 == 0.0 < ... < +inf < NaN (every NaN equal)."""
    cdef uint64_t bits
    if d != d:
        bits = 0x7FF8000000000000ULL
    elif d == 0.0:
        bits = 0
    else:
        memcpy(&bits, &d, 8)
    if bits & SIGN64:
        return ~bits
    return bits | SIGN64


cdef inline uint32_t float_bits(float f) noexcept nogil:
    cdef uint32_t bits
    if f != f:
        bits = 0x7FC00000U
    elif f == 0.0:
        bits = 0
    else:
        memcpy(&bits, &f, 4)
    if bits & SIGN32:
        return ~bits
    return bits | SIGN32


cdef inline void put_be64(uint8_t* out, uint64_t v) noexcept nogil:
    v = msq_bswap64(v)
    memcpy(out, &v, 8)


cdef inline void put_be32(uint8_t* out, uint32_t v) noexcept nogil:
    v = msq_bswap32(v)
    memcpy(out, &v, 4)


cdef inline int64_t key_size(const ColView* c, int64_t i) noexcept nogil:
    cdef int t = c.type
    cdef int64_t s, e, x, a, b, size
    if not row_valid(c, i):
        return 1
    if t == FT_LONG or t == FT_DOUBLE:
        return 9
    if t == FT_FLOAT:
        return 5
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_STRING:
        return 1 + esc_len(c.data + s, e - s)
    size = 2
    for x in range(s, e):
        if not elem_valid(c, x):
            size += 1
        elif t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
            size += 9
        elif t == FT_FLOAT_ARRAY:
            size += 5
        else:
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            size += 1 + esc_len(c.cdata + a, b - a)
    return size


cdef inline int64_t key_write(const ColView* c, int64_t i, uint8_t* out) noexcept nogil:
    cdef int t = c.type
    cdef int64_t s, e, x, a, b, pos, lv
    cdef double dv
    cdef float fv
    if not row_valid(c, i):
        out[0] = K_NULL
        return 1
    out[0] = K_VALUE
    if t == FT_LONG:
        memcpy(&lv, c.values + 8 * i, 8)
        put_be64(out + 1, long_bits(lv))
        return 9
    if t == FT_DOUBLE:
        memcpy(&dv, c.values + 8 * i, 8)
        put_be64(out + 1, double_bits(dv))
        return 9
    if t == FT_FLOAT:
        memcpy(&fv, c.values + 4 * i, 4)
        put_be32(out + 1, float_bits(fv))
        return 5
    s = ld_off(c.offsets, c.large, i)
    e = ld_off(c.offsets, c.large, i + 1)
    if t == FT_STRING:
        return 1 + esc_write(out + 1, c.data + s, e - s)
    pos = 1
    for x in range(s, e):
        if not elem_valid(c, x):
            out[pos] = K_ELEM_NULL
            pos += 1
            continue
        out[pos] = K_ELEM_VALUE
        pos += 1
        if t == FT_LONG_ARRAY:
            memcpy(&lv, c.cvalues + 8 * x, 8)
            put_be64(out + pos, long_bits(lv))
            pos += 8
        elif t == FT_DOUBLE_ARRAY:
            memcpy(&dv, c.cvalues + 8 * x, 8)
            put_be64(out + pos, double_bits(dv))
            pos += 8
        elif t == FT_FLOAT_ARRAY:
            memcpy(&fv, c.cvalues + 4 * x, 4)
            put_be32(out + pos, float_bits(fv))
            pos += 4
        else:
            a = ld_off(c.coffsets, c.clarge, x)
            b = ld_off(c.coffsets, c.clarge, x + 1)
            pos += esc_write(out + pos, c.cdata + a, b - a)
    out[pos] = K_END
    return pos + 1


cdef inline bint plain_strings(const ColView* c, int64_t i0, int64_t n) noexcept nogil:
    """A STRING column whose bytes (rows i0..i0+n-1) hold no 0x00: its keys need no escaping.

    One ``memchr`` over the rows' bytes instead of one per row.
    """
    cdef int64_t s, e
    if c.type != FT_STRING:
        return False
    s = ld_off(c.offsets, c.large, i0)
    e = ld_off(c.offsets, c.large, i0 + n)
    return e <= s or memchr(c.data + s, 0, <size_t>(e - s)) == NULL


cdef bint key_plan(const ColView* cols, const int32_t* kc, const uint8_t* kd, Py_ssize_t nk,
                   int64_t num_rows, int64_t i0, int64_t n, bint check_plain, msq_kcol* out) noexcept nogil:
    """Fill ``out[k]`` for the block key writer (``msq_key_write``) over rows i0..i0+n-1 of
    a source of ``num_rows`` rows; False when a key column is not one of its kinds (a list,
    large offsets, or, with ``check_plain``, a string with a 0x00 byte in those rows).
    Without ``check_plain`` the writer finds such a string itself: its escaped size
    disagrees with the key offsets (see ``write_lazy_keys_contig``)."""
    cdef Py_ssize_t k
    cdef const ColView* c
    cdef msq_kcol* o
    for k in range(nk):
        c = &cols[kc[k]]
        o = &out[k]
        if c.type == FT_LONG:
            o.op = MSQ_KL
        elif c.type == FT_DOUBLE:
            o.op = MSQ_KD
        elif c.type == FT_FLOAT:
            o.op = MSQ_KF
        elif c.type == FT_STRING and not c.large and (not check_plain or plain_strings(c, i0, n)):
            o.op = MSQ_KS
            o.data_len = ld_off(c.offsets, False, num_rows)
        else:
            return False
        o.x = 0xFF if kd[k] else 0x00
        o.mask = 0xFFFFFFFFFFFFFFFFULL if kd[k] else 0
        o.validity = c.validity
        o.vbit = c.vbit
        o.values = c.values
        o.offsets = c.offsets
        o.data = c.data
    return True


cdef void add_key_sizes(const ColView* c, int64_t n, bint plain, int64_t* lens) noexcept nogil:
    """lens[i] += the bytes of row i's key in column ``c`` (``plain``: see ``plain_strings``)."""
    cdef int64_t i, w, prev, cur
    if is_fixed(c.type):
        w = 5 if c.type == FT_FLOAT else 9
        if c.validity == NULL:
            for i in range(n):
                lens[i] += w
        else:
            for i in range(n):
                lens[i] += w if row_valid(c, i) else 1
        return
    if plain:
        prev = ld_off(c.offsets, c.large, 0)
        for i in range(n):
            cur = ld_off(c.offsets, c.large, i + 1)
            lens[i] += (3 + cur - prev) if row_valid(c, i) else 1     # 01, bytes, 00 00
            prev = cur
        return
    for i in range(n):
        lens[i] += key_size(c, i)


cdef inline void invert(uint8_t* p, int64_t n) noexcept nogil:
    cdef int64_t q
    for q in range(n):
        p[q] = ~p[q]


cdef void write_key_block(const ColView* c, int64_t i0, int64_t n, bint plain, bint desc,
                          uint8_t* dst, int64_t* cur) noexcept nogil:
    """Write column ``c``'s key bytes of rows i0..i0+n-1 at ``dst + cur[j]``, advancing ``cur[j]``.

    One tight loop per common case (LONG, DOUBLE, FLOAT, unescaped STRING); ``key_write``
    for the rest. A descending column's bytes are inverted.
    """
    cdef int64_t j, i, s, e, ln, w
    cdef uint8_t* p
    cdef uint8_t x = 0xFF if desc else 0x00
    cdef uint64_t x64 = 0xFFFFFFFFFFFFFFFFULL if desc else 0
    cdef uint64_t u
    cdef uint32_t u4
    cdef int64_t lv
    cdef double dv
    cdef float fv
    cdef int t = c.type
    if t == FT_LONG or t == FT_DOUBLE:
        for j in range(n):
            i = i0 + j
            p = dst + cur[j]
            if not row_valid(c, i):
                p[0] = K_NULL ^ x
                cur[j] += 1
                continue
            if t == FT_LONG:
                memcpy(&lv, c.values + 8 * i, 8)
                u = msq_bswap64(long_bits(lv)) ^ x64
            else:
                memcpy(&dv, c.values + 8 * i, 8)
                u = msq_bswap64(double_bits(dv)) ^ x64
            p[0] = K_VALUE ^ x
            memcpy(p + 1, &u, 8)
            cur[j] += 9
        return
    if t == FT_FLOAT:
        for j in range(n):
            i = i0 + j
            p = dst + cur[j]
            if not row_valid(c, i):
                p[0] = K_NULL ^ x
                cur[j] += 1
                continue
            memcpy(&fv, c.values + 4 * i, 4)
            u4 = msq_bswap32(float_bits(fv)) ^ <uint32_t>x64
            p[0] = K_VALUE ^ x
            memcpy(p + 1, &u4, 4)
            cur[j] += 5
        return
    if plain:
        s = ld_off(c.offsets, c.large, i0)
        for j in range(n):
            i = i0 + j
            e = ld_off(c.offsets, c.large, i + 1)
            p = dst + cur[j]
            if not row_valid(c, i):
                p[0] = K_NULL ^ x
                cur[j] += 1
            else:
                ln = e - s
                p[0] = K_VALUE ^ x
                copy_small(p + 1, c.data + s, ln)
                if desc:
                    invert(p + 1, ln)
                p[ln + 1] = x
                p[ln + 2] = x
                cur[j] += ln + 3
            s = e
        return
    for j in range(n):
        p = dst + cur[j]
        w = key_write(c, i0 + j, p)
        if desc:
            invert(p, w)
        cur[j] += w


def encode_keys(FrameSource src, const int32_t[::1] columns, const uint8_t[::1] descending):
    """Sort-key bytes of every row of ``src`` for the key ``columns`` (indexes into ``src``).

    Returns ``(offsets int64[n + 1], data uint8[...])``. A descending column's bytes are
    inverted, so plain unsigned byte order of the keys is the SQL order. The common column
    kinds (``key_plan``) are sized and written a row at a time by ``msq_key_sizes`` /
    ``msq_key_write``; otherwise sizes are summed column by column and the bytes written a
    block of rows at a time, column by column, so each column's loop is specialized.
    """
    cdef:
        Py_ssize_t n = src.num_rows
        Py_ssize_t nk = columns.shape[0]
        Py_ssize_t i, k, i0, nb
        int64_t total = 0
        int64_t* offs
        int64_t* cur = NULL
        uint8_t[::1] out
        int64_t[::1] offs_mv
        uint8_t* dst
        const ColView** views = NULL
        bint* plain = NULL
        msq_kcol* kp = NULL
        int64_t* scratch = NULL
        bint fast = False
        bint bad = False
    if descending.shape[0] != nk:
        raise ValueError("columns and descending differ in length")
    for k in range(nk):
        if columns[k] < 0 or columns[k] >= src.num_columns:
            raise IndexError(f"key column {columns[k]} out of range")
    offsets_arr = pool_empty(n + 1, dtype=np.int64)
    offs_mv = offsets_arr
    offs = &offs_mv[0]
    memset(offs, 0, sizeof(int64_t) * (n + 1))
    try:
        views = <const ColView**>malloc(sizeof(ColView*) * (nk + 1))
        plain = <bint*>malloc(sizeof(bint) * (nk + 1))
        cur = <int64_t*>malloc(sizeof(int64_t) * KEY_BLOCK)
        kp = <msq_kcol*>malloc(sizeof(msq_kcol) * (nk + 1))
        scratch = <int64_t*>malloc(sizeof(int64_t) * MSQ_KB * (nk + 1))
        if views == NULL or plain == NULL or cur == NULL or kp == NULL or scratch == NULL:
            raise MemoryError()
        for k in range(nk):
            views[k] = &src.cols[columns[k]]
        with nogil:
            fast = nk > 0 and key_plan(src.cols, &columns[0], &descending[0], nk, n, 0, n, True, kp)
            if fast:
                msq_key_sizes(kp, <int>nk, 0, n, offs)
            else:
                for k in range(nk):
                    plain[k] = plain_strings(views[k], 0, n)
                    add_key_sizes(views[k], n, plain[k], offs + 1)
                for i in range(n):
                    offs[i + 1] += offs[i]
            total = offs[n]
        data_arr = pool_empty(total, dtype=np.uint8)
        if total > 0:
            out = data_arr
            dst = &out[0]
            with nogil:
                if fast:
                    bad = msq_key_write(kp, <int>nk, 0, n, dst, total, offs, scratch) != 0
                i0 = 0
                while i0 < n and not bad and not fast:
                    nb = min(<Py_ssize_t>KEY_BLOCK, n - i0)
                    memcpy(cur, offs + i0, sizeof(int64_t) * nb)
                    for k in range(nk):
                        write_key_block(views[k], i0, nb, plain[k], descending[k] != 0, dst, cur)
                    for i in range(nb):
                        if cur[i] != offs[i0 + i + 1]:
                            bad = True
                    i0 += nb
    finally:
        free(views)
        free(plain)
        free(cur)
        free(kp)
        free(scratch)
    if bad:
        raise RuntimeError("key sizing and writing disagree")
    return offsets_arr, data_arr


def key_offsets(FrameSource src, const int32_t[::1] columns):
    """The offsets (int64[n + 1]) ``encode_keys`` would give, without writing the key bytes.

    A source whose key column points at these offsets (and no data) has *lazy* keys:
    ``gather_frame`` encodes them straight into the frame it writes. (Directions do not
    change sizes: the plan is made ascending.)
    """
    cdef:
        Py_ssize_t n = src.num_rows
        Py_ssize_t nk = columns.shape[0]
        Py_ssize_t i, k
        int64_t[::1] offs
        const ColView* v
        msq_kcol* kp = NULL
        uint8_t* kd = NULL
    for k in range(nk):
        if columns[k] < 0 or columns[k] >= src.num_columns:
            raise IndexError(f"key column {columns[k]} out of range")
    offsets_arr = pool_empty(n + 1, dtype=np.int64)
    offs = offsets_arr
    kp = <msq_kcol*>malloc(sizeof(msq_kcol) * (nk + 1))
    kd = <uint8_t*>malloc(nk + 1)
    if kp == NULL or kd == NULL:
        free(kp)
        free(kd)
        raise MemoryError()
    with nogil:
        memset(&offs[0], 0, sizeof(int64_t) * (n + 1))
        memset(kd, 0, nk + 1)
        if nk > 0 and key_plan(src.cols, &columns[0], kd, nk, n, 0, n, True, kp):
            msq_key_sizes(kp, <int>nk, 0, n, &offs[0])
        else:
            for k in range(nk):
                v = &src.cols[columns[k]]
                add_key_sizes(v, n, plain_strings(v, 0, n), &offs[1])
            for i in range(n):
                offs[i + 1] += offs[i]
    free(kp)
    free(kd)
    return offsets_arr


cdef bint write_lazy_keys_contig(const ColView* cols, const ColView* key, const int32_t* kc,
                                 const uint8_t* kd, Py_ssize_t nk, int64_t num_rows, int64_t i0, int64_t n,
                                 uint8_t** buf) noexcept nogil:
    """The key column of rows i0..i0+n-1 of a lazy-key source, encoded into ``buf[0..1]``.

    Returns False if the bytes written disagree with the key offsets (a bug, not bad input).
    """
    cdef int64_t cur[KEY_BLOCK]
    cdef int64_t j, j0, nb, base, e
    cdef Py_ssize_t k
    cdef const ColView* c
    cdef msq_kcol* kp
    cdef int r
    rebase(buf[0], key.offsets, key.large, i0, n)
    base = ld_off(key.offsets, key.large, i0)
    if key.large and nk > 0:
        # the sizes in key.offsets count the escapes of strings with 0x00 bytes, so such a
        # string's row disagrees with the block writer's unescaped size: the writer stops
        # and the general one below writes the frame's keys over again
        kp = <msq_kcol*>malloc(sizeof(msq_kcol) * nk + sizeof(int64_t) * MSQ_KB * (nk + 1))
        r = -1
        if kp != NULL and key_plan(cols, kc, kd, nk, num_rows, i0, n, False, kp):
            r = msq_key_write(kp, <int>nk, i0, n, buf[1], ld_off(key.offsets, True, i0 + n) - base,
                              <const int64_t*>key.offsets + i0, <int64_t*>(kp + nk))
        free(kp)
        if r == 0:
            return True
    j0 = 0
    while j0 < n:
        nb = min(<int64_t>KEY_BLOCK, n - j0)
        for j in range(nb):
            cur[j] = ld_off(key.offsets, key.large, i0 + j0 + j) - base
        for k in range(nk):
            c = &cols[kc[k]]
            write_key_block(c, i0 + j0, nb, plain_strings(c, i0 + j0, nb), kd[k] != 0, buf[1], cur)
        for j in range(nb):
            e = ld_off(key.offsets, key.large, i0 + j0 + j + 1) - base
            if cur[j] != e:
                return False
        j0 += nb
    return True


cdef bint write_lazy_keys(const ColView** views, Py_ssize_t kcol, const int32_t* kc, const uint8_t* kd,
                          Py_ssize_t nk, const int32_t* src, const int64_t* rows, int64_t n,
                          uint8_t** buf) noexcept nogil:
    """``write_lazy_keys_contig`` for rows gathered from several sources (one at a time)."""
    cdef int64_t j, i, w, pos = 0, row_start
    cdef Py_ssize_t k
    cdef const ColView* v
    st_i32(buf[0], 0, 0)
    for j in range(n):
        v = views[src[j]]
        i = rows[j]
        row_start = pos
        for k in range(nk):
            w = key_write(&v[kc[k]], i, buf[1] + pos)
            if kd[k]:
                invert(buf[1] + pos, w)
            pos += w
        if pos - row_start != ld_off(v[kcol].offsets, v[kcol].large, i + 1) - ld_off(v[kcol].offsets, v[kcol].large, i):
            return False
        st_i32(buf[0], j + 1, pos)
    return True


cdef inline int64_t skip_string(const uint8_t* d, int64_t p, int64_t end, uint8_t x) noexcept nogil:
    cdef uint8_t b
    while p < end:
        b = d[p] ^ x
        if b != 0:
            p += 1
            continue
        if p + 1 >= end:
            return -1
        b = d[p + 1] ^ x
        p += 2
        if b == 0x00:
            return p
        if b != 0xFF:
            return -1
    return -1


cdef inline int64_t skip_column(const uint8_t* d, int64_t p, int64_t end, int t, uint8_t x) noexcept nogil:
    cdef uint8_t m
    if p >= end:
        return -1
    m = d[p] ^ x
    p += 1
    if m == K_NULL:
        return p
    if m != K_VALUE:
        return -1
    if t == FT_LONG or t == FT_DOUBLE:
        p += 8
    elif t == FT_FLOAT:
        p += 4
    elif t == FT_STRING:
        p = skip_string(d, p, end, x)
    elif is_fixed_list(t) or is_string_list(t):
        while True:
            if p >= end:
                return -1
            m = d[p] ^ x
            p += 1
            if m == K_END:
                break
            if m == K_ELEM_NULL:
                continue
            if m != K_ELEM_VALUE:
                return -1
            if t == FT_LONG_ARRAY or t == FT_DOUBLE_ARRAY:
                p += 8
            elif t == FT_FLOAT_ARRAY:
                p += 4
            else:
                p = skip_string(d, p, end, x)
                if p < 0:
                    return -1
    else:
        return -1
    if p < 0 or p > end:
        return -1
    return p


def key_prefix_lengths(const int64_t[::1] offsets, const uint8_t[::1] data,
                       const int32_t[::1] types, const uint8_t[::1] descending):
    """Bytes taken by the first ``len(types)`` key columns of every key (int64[n]).

    Raises ValueError if a key does not parse as those columns.
    """
    cdef:
        Py_ssize_t n = offsets.shape[0] - 1
        Py_ssize_t m = types.shape[0]
        Py_ssize_t i, k
        int64_t p, end
        int64_t bad = -1
        int64_t[::1] out
        const uint8_t* d = NULL
        uint8_t x
    if n < 0:
        raise ValueError("offsets are empty")
    if descending.shape[0] != m:
        raise ValueError("types and descending differ in length")
    if data.shape[0] > 0:
        d = &data[0]
    result = np.empty(n, dtype=np.int64)
    out = result
    with nogil:
        for i in range(n):
            p = offsets[i]
            end = offsets[i + 1]
            if p < 0 or end < p or end > data.shape[0]:
                bad = i
                break
            for k in range(m):
                x = 0xFF if descending[k] else 0x00
                p = skip_column(d, p, end, types[k], x)
                if p < 0:
                    break
            if p < 0:
                bad = i
                break
            out[i] = p - offsets[i]
    if bad >= 0:
        raise ValueError(f"key {bad} does not parse as the key columns")
    return result


# --- gather: rows of several sources -> one frame ----------------------------------------------

cdef struct ColSize:
    int64_t nulls
    int64_t elems
    int64_t elem_nulls
    int64_t data


cdef void size_column(const ColView** views, Py_ssize_t ns, Py_ssize_t c, const int32_t* src,
                      const int64_t* rows, int64_t n, ColSize* out) noexcept nogil:
    cdef int64_t j, i, s, e, x, a, b
    cdef const ColView* v
    cdef int t = views[src[0]][c].type
    cdef bint nullable = False
    out.nulls = 0
    out.elems = 0
    out.elem_nulls = 0
    out.data = 0
    for j in range(ns):
        if views[j][c].validity != NULL:
            nullable = True
    if is_fixed(t) and not nullable:
        return
    for j in range(n):
        v = &views[src[j]][c]
        i = rows[j]
        if t == FT_KEY:
            out.data += ld_off(v.offsets, v.large, i + 1) - ld_off(v.offsets, v.large, i)
            continue
        if not row_valid(v, i):
            out.nulls += 1
            continue
        if is_fixed(t):
            continue
        s = ld_off(v.offsets, v.large, i)
        e = ld_off(v.offsets, v.large, i + 1)
        if t == FT_STRING:
            out.data += e - s
            continue
        out.elems += e - s
        if v.cvalidity != NULL or is_string_list(t):
            for x in range(s, e):
                if not elem_valid(v, x):
                    out.elem_nulls += 1
                elif is_string_list(t):
                    a = ld_off(v.coffsets, v.clarge, x)
                    b = ld_off(v.coffsets, v.clarge, x + 1)
                    out.data += b - a


cdef int64_t write_column(const ColView** views, Py_ssize_t c, const int32_t* src, const int64_t* rows,
                          int64_t n, uint8_t** buf) noexcept nogil:
    """Write column ``c`` of the selected rows into its (zeroed) output buffers ``buf[...]``;
    returns the bytes written into a key's or a string's data buffer (its last).

    A NULL bitmap buffer means "no nulls": its bits are not written.
    """
    cdef int64_t j, i, s, e, x, a, b, pos = 0, dpos = 0
    cdef const ColView* v
    cdef int t = views[src[0]][c].type
    cdef int w = type_width(t)
    cdef uint8_t* vb
    cdef uint8_t* ob
    cdef uint8_t* db
    if t == FT_KEY or t == FT_STRING:
        # a key is a string column without validity whose buffers start one earlier
        vb = NULL if t == FT_KEY else buf[0]
        ob = buf[0] if t == FT_KEY else buf[1]
        db = buf[1] if t == FT_KEY else buf[2]
        st_i32(ob, 0, 0)
        for j in range(n):
            # offsets two strides ahead, then the bytes they point to one stride ahead
            if j + 2 * PREFETCH_ROWS < n:
                v = &views[src[j + 2 * PREFETCH_ROWS]][c]
                MSQ_PREFETCH(v.offsets + (8 if v.large else 4) * rows[j + 2 * PREFETCH_ROWS])
            if j + PREFETCH_ROWS < n:
                v = &views[src[j + PREFETCH_ROWS]][c]
                MSQ_PREFETCH(v.data + ld_off(v.offsets, v.large, rows[j + PREFETCH_ROWS]))
            v = &views[src[j]][c]
            i = rows[j]
            if row_valid(v, i):
                s = ld_off(v.offsets, v.large, i)
                e = ld_off(v.offsets, v.large, i + 1)
                copy_small(db + pos, v.data + s, e - s)
                pos += e - s
                if vb != NULL:
                    set_bit(vb, j)
            st_i32(ob, j + 1, pos)
        return pos
    vb = buf[0]
    if is_fixed(t):
        if w == 8:
            for j in range(n):
                if j + PREFETCH_ROWS < n:
                    MSQ_PREFETCH(views[src[j + PREFETCH_ROWS]][c].values + 8 * rows[j + PREFETCH_ROWS])
                v = &views[src[j]][c]
                i = rows[j]
                if row_valid(v, i):
                    memcpy(buf[1] + 8 * j, v.values + 8 * i, 8)
                    if vb != NULL:
                        set_bit(vb, j)
                else:
                    memset(buf[1] + 8 * j, 0, 8)
        else:
            for j in range(n):
                v = &views[src[j]][c]
                i = rows[j]
                if row_valid(v, i):
                    memcpy(buf[1] + 4 * j, v.values + 4 * i, 4)
                    if vb != NULL:
                        set_bit(vb, j)
                else:
                    memset(buf[1] + 4 * j, 0, 4)
        return 0
    st_i32(buf[1], 0, 0)
    if is_fixed_list(t):
        for j in range(n):
            v = &views[src[j]][c]
            i = rows[j]
            if row_valid(v, i):
                s = ld_off(v.offsets, v.large, i)
                e = ld_off(v.offsets, v.large, i + 1)
                if v.cvalidity == NULL:
                    if e > s:
                        memcpy(buf[3] + pos * w, v.cvalues + s * w, <size_t>((e - s) * w))
                    if buf[2] != NULL:
                        for x in range(e - s):
                            set_bit(buf[2], pos + x)
                else:
                    for x in range(s, e):
                        if elem_valid(v, x):
                            memcpy(buf[3] + (pos + x - s) * w, v.cvalues + x * w, w)
                            if buf[2] != NULL:
                                set_bit(buf[2], pos + x - s)
                        else:
                            memset(buf[3] + (pos + x - s) * w, 0, w)
                pos += e - s
                if vb != NULL:
                    set_bit(vb, j)
            st_i32(buf[1], j + 1, pos)
        return 0
    # string lists
    st_i32(buf[3], 0, 0)
    for j in range(n):
        v = &views[src[j]][c]
        i = rows[j]
        if row_valid(v, i):
            s = ld_off(v.offsets, v.large, i)
            e = ld_off(v.offsets, v.large, i + 1)
            for x in range(s, e):
                if elem_valid(v, x):
                    a = ld_off(v.coffsets, v.clarge, x)
                    b = ld_off(v.coffsets, v.clarge, x + 1)
                    if b > a:
                        memcpy(buf[4] + dpos, v.cdata + a, <size_t>(b - a))
                        dpos += b - a
                    if buf[2] != NULL:
                        set_bit(buf[2], pos)
                pos += 1
                st_i32(buf[3], pos, dpos)
            if vb != NULL:
                set_bit(vb, j)
        st_i32(buf[1], j + 1, pos)
    return 0


cdef int64_t count_nulls(const ColView** views, Py_ssize_t ns, Py_ssize_t c, const int32_t* src,
                         const int64_t* rows, int64_t n) noexcept nogil:
    """Null rows of column ``c`` among the selected rows (no pass when no source has nulls)."""
    cdef int64_t j, nulls = 0
    cdef bint nullable = False
    for j in range(ns):
        if views[j][c].validity != NULL:
            nullable = True
    if not nullable:
        return 0
    for j in range(n):
        if not row_valid(&views[src[j]][c], rows[j]):
            nulls += 1
    return nulls


cdef int64_t write_runs(const ColView** views, Py_ssize_t c, const int32_t* src, const int64_t* rows,
                        const int64_t* starts, int64_t m, uint8_t** buf) noexcept nogil:
    """``write_column`` for a fixed, string or key column whose rows come in stretches of
    consecutive rows of one source (stretch k: output rows [starts[k], starts[k + 1])), as
    a merge's do: a stretch without nulls is copied in bulk (values or bytes), its offsets
    rebased in one loop. Returns the bytes of a string's or key's data buffer."""
    cdef int64_t k, j, j0, j1, i, i0, s0, e0, base, pos = 0
    cdef const ColView* v
    cdef int t = views[src[0]][c].type
    cdef int w = type_width(t)
    cdef uint8_t* vb = NULL
    cdef uint8_t* ob = NULL
    cdef uint8_t* db = NULL
    if t == FT_KEY:
        ob = buf[0]
        db = buf[1]
    else:
        vb = buf[0]
        if t == FT_STRING:
            ob = buf[1]
            db = buf[2]
    if ob != NULL:
        st_i32(ob, 0, 0)
    for k in range(m):
        j0 = starts[k]
        j1 = starts[k + 1]
        v = &views[src[j0]][c]
        i0 = rows[j0]
        if v.validity != NULL:              # row by row, as write_column (keys have no nulls)
            for j in range(j0, j1):
                i = i0 + j - j0
                if is_fixed(t):
                    if row_valid(v, i):
                        memcpy(buf[1] + w * j, v.values + w * i, w)
                        if vb != NULL:
                            set_bit(vb, j)
                    else:
                        memset(buf[1] + w * j, 0, w)
                    continue
                if row_valid(v, i):
                    s0 = ld_off(v.offsets, v.large, i)
                    e0 = ld_off(v.offsets, v.large, i + 1)
                    copy_small(db + pos, v.data + s0, e0 - s0)
                    pos += e0 - s0
                    if vb != NULL:
                        set_bit(vb, j)
                st_i32(ob, j + 1, pos)
            continue
        if vb != NULL:
            for j in range(j0, j1):
                set_bit(vb, j)
        if is_fixed(t):
            memcpy(buf[1] + w * j0, v.values + w * i0, <size_t>(w * (j1 - j0)))
            continue
        base = ld_off(v.offsets, v.large, i0)
        for j in range(j0, j1):
            st_i32(ob, j + 1, pos + ld_off(v.offsets, v.large, i0 + j - j0 + 1) - base)
        e0 = ld_off(v.offsets, v.large, i0 + j1 - j0)
        if e0 > base:
            memcpy(db + pos, v.data + base, <size_t>(e0 - base))
        pos += e0 - base
    return pos


cdef inline bint contig_ok(const ColView* v) noexcept nogil:
    """A null-free column whose contiguous rows can be copied in bulk."""
    return v.validity == NULL and v.cvalidity == NULL


cdef void size_contig(const ColView* v, int64_t i0, int64_t n, ColSize* out) noexcept nogil:
    """``size_column`` for rows i0..i0+n-1 of one source, when ``contig_ok(v)``."""
    cdef int t = v.type
    cdef int64_t e0, e1
    out.nulls = 0
    out.elems = 0
    out.elem_nulls = 0
    out.data = 0
    if is_fixed(t):
        return
    e0 = ld_off(v.offsets, v.large, i0)
    e1 = ld_off(v.offsets, v.large, i0 + n)
    if t == FT_KEY or t == FT_STRING:
        out.data = e1 - e0
        return
    out.elems = e1 - e0
    if is_string_list(t):
        out.data = ld_off(v.coffsets, v.clarge, e1) - ld_off(v.coffsets, v.clarge, e0)


cdef inline void rebase(uint8_t* dst, const uint8_t* src, bint large, int64_t i0, int64_t n) noexcept nogil:
    """dst[j] = src[i0 + j] - src[i0] for j in 0..n (int32 output)."""
    cdef int64_t j, base = ld_off(src, large, i0)
    if not large:
        msq_rebase32(dst, src + 4 * i0, n + 1, <int32_t>base)
        return
    for j in range(n + 1):
        st_i32(dst, j, ld_off(src, True, i0 + j) - base)


cdef inline void rebase_hashed(uint8_t* dst, const uint8_t* src, bint large, int64_t i0, int64_t n,
                               msq_hash* hs) noexcept nogil:
    """``rebase``, int32 offsets hashed into ``hs`` as they are written (``msq_copy_hash_as``)."""
    if large:
        rebase(dst, src, large, i0, n)
    else:
        msq_copy_hash_as(hs, dst, src + 4 * i0, <size_t>(4 * (n + 1)), 1, <int32_t>ld_off(src, False, i0))


cdef void write_contig(const ColView* v, int64_t i0, int64_t n, uint8_t** buf, msq_hash* hs) noexcept nogil:
    """``write_column`` for rows i0..i0+n-1 of one source, when ``contig_ok(v)``: bulk copies
    (values and string bytes hashed into ``hs`` as they are copied)."""
    cdef int t = v.type
    cdef int w = type_width(t)
    cdef int64_t e0, e1, d0, d1
    cdef uint8_t* ob
    cdef uint8_t* db
    if is_fixed(t):
        msq_copy_hash(hs, buf[1], v.values + i0 * w, <size_t>(n * w))
        return
    if t == FT_KEY or t == FT_STRING:
        ob = buf[0] if t == FT_KEY else buf[1]
        db = buf[1] if t == FT_KEY else buf[2]
        rebase_hashed(ob, v.offsets, v.large, i0, n, hs)
        e0 = ld_off(v.offsets, v.large, i0)
        e1 = ld_off(v.offsets, v.large, i0 + n)
        if e1 > e0:
            msq_copy_hash(hs, db, v.data + e0, <size_t>(e1 - e0))
        return
    rebase_hashed(buf[1], v.offsets, v.large, i0, n, hs)
    e0 = ld_off(v.offsets, v.large, i0)
    e1 = ld_off(v.offsets, v.large, i0 + n)
    if is_fixed_list(t):
        if e1 > e0:
            memcpy(buf[3], v.cvalues + e0 * w, <size_t>((e1 - e0) * w))
        return
    rebase(buf[3], v.coffsets, v.clarge, e0, e1 - e0)
    d0 = ld_off(v.coffsets, v.clarge, e0)
    d1 = ld_off(v.coffsets, v.clarge, e1)
    if d1 > d0:
        memcpy(buf[4], v.cdata + d0, <size_t>(d1 - d0))


cdef void buffer_sizes(int t, int64_t n, const ColSize* cs, int64_t* out) noexcept nogil:
    cdef int w = type_width(t)
    if t == FT_KEY:
        out[0] = 4 * (n + 1)
        out[1] = cs.data
        return
    out[0] = (n + 7) // 8 if cs.nulls > 0 else 0
    if is_fixed(t):
        out[1] = n * w
        return
    out[1] = 4 * (n + 1)
    if t == FT_STRING:
        out[2] = cs.data
        return
    out[2] = (cs.elems + 7) // 8 if cs.elem_nulls > 0 else 0
    if is_fixed_list(t):
        out[3] = cs.elems * w
        return
    out[3] = 4 * (cs.elems + 1)
    out[4] = cs.data


def gather_frame(bytes schema, list sources, const int32_t[::1] source_ids, const int64_t[::1] rows,
                 Py_ssize_t start, Py_ssize_t end, int64_t max_frame_size, int flags,
                 const int32_t[::1] key_columns=None, const uint8_t[::1] key_descending=None):
    """Write rows ``(sources[source_ids[i]], rows[i])`` for i in [start, end) into one frame.

    ``schema`` is the frame's schema section; every source must have its columns (and a key
    column when ``flags`` has F_HAS_KEY). Writes as many rows as fit in ``max_frame_size``
    and returns ``(frame, next)``: the rows written are [start, next). ``(None, start)``
    means the row at ``start`` does not fit on its own. ``source_ids`` and ``rows`` None:
    one source, whose rows [start, end) are written in order (no index arrays needed).

    With ``key_columns`` / ``key_descending``, every source has lazy keys (offsets from
    ``key_offsets``, no bytes): the key bytes are encoded straight into the frame.
    """
    cdef:
        Py_ssize_t ns = len(sources)
        Py_ssize_t ncols, ncv, c, b, k, nbuf
        int64_t n, r, acc = 0, budget, stop, pos, frame_len, data_start, slen
        int64_t sizes[5]
        bint has_key = (flags & F_HAS_KEY) != 0
        bint bad = False
        bint contig = False
        bint lazy = key_columns is not None
        bint key_bad = False
        Py_ssize_t nk = 0
        const int32_t* kc = NULL
        const uint8_t* kd = NULL
        const ColView** views = NULL
        const int64_t** costs = NULL
        int64_t* bsize = NULL
        int64_t* boff = NULL
        uint8_t** bptr = NULL
        ColSize* csz = NULL
        int* types = NULL
        int64_t* nrows = NULL
        FrameSource fs
        uint8_t* p
        const int32_t* sp = NULL
        const int64_t* rp = NULL
        int32_t* dsp = NULL
        int64_t* drp = NULL
        bint direct = source_ids is None and rows is None
        bint need_index = False
        bint range_ok
        msq_hash hs
        object out
    if ns == 0:
        raise ValueError("no sources")
    if direct:
        if ns != 1 or start < 0 or end < start or end > (<FrameSource>sources[0]).num_rows:
            raise ValueError("bad row range")
    elif (source_ids is None or rows is None or start < 0 or end < start or end > source_ids.shape[0]
            or rows.shape[0] != source_ids.shape[0]):
        raise ValueError("bad row range")
    fs = sources[0]
    ncols = fs.num_columns
    ncv = ncols + (1 if has_key else 0)
    slen = len(schema)
    if lazy:
        nk = key_columns.shape[0]
        if not has_key or key_descending is None or key_descending.shape[0] != nk or nk == 0:
            raise ValueError("lazy keys need the key flag and one direction per key column")
        for k in range(nk):
            if key_columns[k] < 0 or key_columns[k] >= ncols:
                raise IndexError(f"key column {key_columns[k]} out of range")
        kc = &key_columns[0]
        kd = &key_descending[0]
    try:
        views = <const ColView**>malloc(sizeof(ColView*) * ns)
        costs = <const int64_t**>malloc(sizeof(int64_t*) * ns)
        types = <int*>malloc(sizeof(int) * (ncv + 1))
        csz = <ColSize*>malloc(sizeof(ColSize) * (ncv + 1))
        if views == NULL or costs == NULL or types == NULL or csz == NULL:
            raise MemoryError()
        for k in range(ns):
            fs = sources[k]
            if fs.num_columns != ncols or (has_key and not fs.has_key):
                raise ValueError(f"source {k} does not match the frame schema")
            if has_key and (fs.cols[ncols].data == NULL) != lazy and fs.num_rows > 0:
                raise ValueError(f"source {k}: lazy keys need key_columns, and only lazy keys may")
            views[k] = fs.cols
        fs = sources[0]
        nbuf = 0
        for c in range(ncv):
            types[c] = fs.cols[c].type
            nbuf += type_buffers(types[c])
        for k in range(1, ns):
            fs = sources[k]
            for c in range(ncv):
                if fs.cols[c].type != types[c]:
                    raise ValueError(f"source {k} column {c} has another type")
        nrows = <int64_t*>malloc(sizeof(int64_t) * ns)
        if nrows == NULL:
            raise MemoryError()
        for k in range(ns):
            nrows[k] = (<FrameSource>sources[k]).num_rows
        budget = (max_frame_size - frame_overhead(slen, nbuf)) * 8
        stop = start
        range_ok = direct
        for c in range(ncv):
            range_ok = range_ok and range_costable(&views[0][c])
        for k in range(ns):
            fs = sources[k]
            if fs.costs is None and not range_ok:
                fs._compute_costs()
            costs[k] = fs.cost_ptr
        if range_ok:
            with nogil:
                stop = range_stop(views[0], ncv, start, end, budget)
        elif direct:
            with nogil:
                for r in range(start, end):
                    acc += costs[0][r]
                    if acc > budget:
                        break
                    stop = r + 1
        if direct:
            n = stop - start
            # index arrays of the frame's rows: row 0 for the bulk copies, and every row for
            # the columns with nulls (copied row by row)
            for c in range(ncv):
                if not contig_ok(&views[0][c]):
                    need_index = True
            dsp = <int32_t*>malloc(sizeof(int32_t) * (n + 1))
            drp = <int64_t*>malloc(sizeof(int64_t) * (n + 1))
            if dsp == NULL or drp == NULL:
                raise MemoryError()
            dsp[0] = 0
            drp[0] = start
            if need_index:
                for r in range(n):
                    dsp[r] = 0
                    drp[r] = start + r
            sp = dsp
            rp = drp
        else:
            sp = &source_ids[start] if end > start else NULL
            rp = &rows[start] if end > start else NULL
            with nogil:
                for r in range(end - start):
                    if sp[r] < 0 or sp[r] >= ns or rp[r] < 0 or rp[r] >= nrows[sp[r]]:
                        bad = True
                        break
                    if acc + costs[sp[r]][rp[r]] > budget:
                        break
                    acc += costs[sp[r]][rp[r]]
                    stop = start + r + 1
            if bad and stop == start:
                raise IndexError(f"row {rows[stop]} of source {source_ids[stop]} is out of range")
        if stop == start and end > start:
            return None, start
        n = stop - start
        bsize = <int64_t*>malloc(sizeof(int64_t) * (nbuf + 1))
        boff = <int64_t*>malloc(sizeof(int64_t) * (nbuf + 1))
        bptr = <uint8_t**>malloc(sizeof(uint8_t*) * (nbuf + 1))
        if bsize == NULL or boff == NULL or bptr == NULL:
            raise MemoryError()
        with nogil:
            contig = n > 0
            if not direct:
                for r in range(1, n):
                    if sp[r] != sp[0] or rp[r] != rp[0] + r:
                        contig = False
                        break
        if not contig and n > 0:
            out = gather_rows(schema, views, ns, ncv, types, nbuf, sp, rp, n, acc, max_frame_size, flags,
                              kc, kd, nk, bsize, boff, bptr, csz)
            return out, stop
        with nogil:
            b = 0
            for c in range(ncv):
                if contig and contig_ok(&views[sp[0]][c]):
                    size_contig(&views[sp[0]][c], rp[0], n, &csz[c])
                elif n > 0:
                    size_column(views, ns, c, sp, rp, n, &csz[c])
                else:
                    memset(&csz[c], 0, sizeof(ColSize))
                buffer_sizes(types[c], n, &csz[c], sizes)
                for k in range(type_buffers(types[c])):
                    bsize[b] = sizes[k]
                    b += 1
            data_start = HDR + pad8(slen) + pad8(8 * nbuf)
            pos = data_start
            for b in range(nbuf):
                boff[b] = pos
                pos += pad8(bsize[b])
            frame_len = pos
        if frame_len > max_frame_size or frame_len > 0xFFFFFFFF:
            raise RuntimeError(f"frame of {frame_len} bytes exceeds the cost bound {max_frame_size}")
        # From Arrow's memory pool (mimalloc or jemalloc): it reuses freed pages, where
        # glibc gives every batch of new frames fresh, page-faulting memory.
        out = pa.allocate_buffer(frame_len)
        p = <uint8_t*><uintptr_t>out.address
        with nogil:
            # zero what the writers do not fully overwrite: header, schema and directory
            # padding, the padding after every buffer, and validity bitmaps
            memset(p, 0, <size_t>(HDR + pad8(slen) + pad8(8 * nbuf)))
            for b in range(nbuf):
                memset(p + boff[b] + bsize[b], 0, <size_t>(pad8(bsize[b]) - bsize[b]))
            if n == 0:                  # only zero offsets entries: write them as such
                memset(p + data_start, 0, <size_t>(frame_len - data_start))
            b = 0
            for c in range(ncv):
                if types[c] != FT_KEY:
                    memset(p + boff[b], 0, <size_t>bsize[b])
                    if is_fixed_list(types[c]) or is_string_list(types[c]):
                        memset(p + boff[b + 2], 0, <size_t>bsize[b + 2])
                b += type_buffers(types[c])
            memcpy(p, b"MSQF", 4)
            st_u16(p + 4, VERSION)
            st_u16(p + 6, <uint16_t>(flags & 3))
            st_u32(p + 8, <uint32_t>frame_len)
            st_u32(p + 12, <uint32_t>n)
            st_u32(p + 16, <uint32_t>ncols)
            st_u32(p + 20, <uint32_t>slen)
            st_u32(p + 24, <uint32_t>nbuf)
        memcpy(p + HDR, <const char*>schema, slen)
        with nogil:
            pos = HDR + pad8(slen)
            for b in range(nbuf):
                st_u32(p + pos + 8 * b, <uint32_t>boff[b])
                st_u32(p + pos + 8 * b + 4, <uint32_t>bsize[b])
                bptr[b] = p + boff[b] if bsize[b] > 0 else NULL
            # the checksum runs behind the writers, over each column's bytes while they are
            # still in cache (bytes [HDR, boff[b]) are final once the columns before b are)
            msq_hash_begin(&hs, p + HDR, <size_t>(frame_len - HDR))
            if n > 0:
                b = 0
                for c in range(ncv):
                    if types[c] == FT_KEY and lazy:
                        if contig:
                            key_bad = not write_lazy_keys_contig(views[sp[0]], &views[sp[0]][c], kc, kd,
                                                                 nk, nrows[sp[0]], rp[0], n, bptr + b)
                        else:
                            key_bad = not write_lazy_keys(views, c, kc, kd, nk, sp, rp, n, bptr + b)
                    elif contig and contig_ok(&views[sp[0]][c]):
                        write_contig(&views[sp[0]][c], rp[0], n, bptr + b, &hs)
                    else:
                        write_column(views, c, sp, rp, n, bptr + b)
                    b += type_buffers(types[c])
                    msq_hash_upto(&hs, <size_t>((boff[b] if b < nbuf else frame_len) - HDR))
            st_u32(p + 28, <uint32_t>msq_hash_end(&hs))
        if key_bad:
            raise RuntimeError("key sizing and writing disagree")
        return out, stop
    finally:
        free(views)
        free(costs)
        free(types)
        free(csz)
        free(bsize)
        free(boff)
        free(bptr)
        free(nrows)
        free(dsp)
        free(drp)


cdef object gather_rows(bytes schema, const ColView** views, Py_ssize_t ns, Py_ssize_t ncv, const int* types,
                        Py_ssize_t nbuf, const int32_t* sp, const int64_t* rp, int64_t n, int64_t bits,
                        int64_t max_frame_size, int flags, const int32_t* kc, const uint8_t* kd, Py_ssize_t nk,
                        int64_t* bsize, int64_t* boff, uint8_t** bptr, ColSize* csz):
    """``gather_frame`` for rows picked through index arrays (n > 0 rows costing ``bits``).

    A row's string and key bytes sit at random places of the sources, so sizing every
    column first and then writing it loads their offsets twice, both times cache misses.
    Here each column is placed right after the one before, in a frame allocated at the
    rows' cost bound (which the frame never exceeds), and a string's or key's data buffer
    (its last) gets the size its writer reached; only the null counts are taken before.
    The directory is final only at the end, so the checksum runs over the finished frame.
    When the rows come in stretches of consecutive rows of a source (a merge's: hundreds of
    rows long), ``write_runs`` copies each stretch in bulk.
    """
    cdef:
        int64_t slen = len(schema), cap, pos, data_start, frame_len, last, j, m = 0
        int64_t sizes[5]
        int64_t* starts
        Py_ssize_t c, b = 0, k, nb
        int t
        bint one_pass, runs, key_bad = False
        uint8_t* p
    cap = frame_overhead(slen, nbuf) + (bits + 7) // 8
    out = pa.allocate_buffer(cap)
    p = <uint8_t*><uintptr_t>out.address
    data_start = HDR + pad8(slen) + pad8(8 * nbuf)
    starts = <int64_t*>malloc(sizeof(int64_t) * (n + 1))
    if starts == NULL:
        raise MemoryError()
    with nogil:
        # stretches of consecutive rows of one source: a merge's rows come in long ones
        for j in range(n):
            if j == 0 or sp[j] != sp[j - 1] or rp[j] != rp[j - 1] + 1:
                starts[m] = j
                m += 1
        starts[m] = n
        runs = m * 4 <= n
        memset(p, 0, <size_t>data_start)
        pos = data_start
        for c in range(ncv):
            t = types[c]
            nb = type_buffers(t)
            one_pass = is_fixed(t) or t == FT_STRING or t == FT_KEY
            if one_pass:
                memset(&csz[c], 0, sizeof(ColSize))
                if t != FT_KEY:
                    csz[c].nulls = count_nulls(views, ns, c, sp, rp, n)
            else:
                size_column(views, ns, c, sp, rp, n, &csz[c])
            buffer_sizes(t, n, &csz[c], sizes)
            # every buffer but a string's or key's data is sized: place and zero it
            for k in range(nb - 1 if one_pass and not is_fixed(t) else nb):
                boff[b + k] = pos
                bsize[b + k] = sizes[k]
                bptr[b + k] = p + pos if sizes[k] > 0 else NULL
                if t != FT_KEY and (k == 0 or (k == 2 and not one_pass)):      # validity bitmaps
                    memset(p + pos, 0, <size_t>pad8(sizes[k]))
                else:
                    memset(p + pos + sizes[k], 0, <size_t>(pad8(sizes[k]) - sizes[k]))
                pos += pad8(sizes[k])
            if one_pass and not is_fixed(t):
                bptr[b + nb - 1] = p + pos
                if t == FT_KEY and kc != NULL:
                    key_bad = not write_lazy_keys(views, c, kc, kd, nk, sp, rp, n, bptr + b)
                    last = ld_off(bptr[b], False, n)
                elif runs:
                    last = write_runs(views, c, sp, rp, starts, m, bptr + b)
                else:
                    last = write_column(views, c, sp, rp, n, bptr + b)
                boff[b + nb - 1] = pos
                bsize[b + nb - 1] = last
                memset(p + pos + last, 0, <size_t>(pad8(last) - last))
                pos += pad8(last)
            elif one_pass and runs:
                write_runs(views, c, sp, rp, starts, m, bptr + b)
            else:
                write_column(views, c, sp, rp, n, bptr + b)
            b += nb
        frame_len = pos
    free(starts)
    if frame_len > cap or frame_len > max_frame_size or key_bad:
        # the cost bound is an invariant (docs/frames.md): past it, memory is already overwritten
        raise RuntimeError(f"frame of {frame_len} bytes exceeds the cost bound {min(cap, max_frame_size)}"
                           if not key_bad else "key sizing and writing disagree")
    memcpy(p + HDR, <const char*>schema, slen)
    with nogil:
        memcpy(p, b"MSQF", 4)
        st_u16(p + 4, VERSION)
        st_u16(p + 6, <uint16_t>(flags & 3))
        st_u32(p + 8, <uint32_t>frame_len)
        st_u32(p + 12, <uint32_t>n)
        st_u32(p + 16, <uint32_t>(ncv - (1 if flags & F_HAS_KEY else 0)))
        st_u32(p + 20, <uint32_t>slen)
        st_u32(p + 24, <uint32_t>nbuf)
        pos = HDR + pad8(slen)
        for b in range(nbuf):
            st_u32(p + pos + 8 * b, <uint32_t>boff[b])
            st_u32(p + pos + 8 * b + 4, <uint32_t>bsize[b])
        st_u32(p + 28, frame_checksum(p + HDR, frame_len - HDR))
    return out if frame_len == cap else out.slice(0, frame_len)


# --- decoding: frames -> Arrow, through the Arrow C data interface ----------------------------------

cdef extern from *:
    """
    #ifndef ARROW_C_DATA_INTERFACE
    #define ARROW_C_DATA_INTERFACE
    #define ARROW_FLAG_DICTIONARY_ORDERED 1
    #define ARROW_FLAG_NULLABLE 2
    #define ARROW_FLAG_MAP_KEYS_SORTED 4
    struct ArrowSchema {
        const char* format; const char* name; const char* metadata; int64_t flags;
        int64_t n_children; struct ArrowSchema** children; struct ArrowSchema* dictionary;
        void (*release)(struct ArrowSchema*); void* private_data;
    };
    struct ArrowArray {
        int64_t length; int64_t null_count; int64_t offset; int64_t n_buffers; int64_t n_children;
        const void** buffers; struct ArrowArray** children; struct ArrowArray* dictionary;
        void (*release)(struct ArrowArray*); void* private_data;
    };
    #endif
    """
    struct ArrowArray:
        int64_t length
        int64_t null_count
        int64_t offset
        int64_t n_buffers
        int64_t n_children
        const void** buffers
        ArrowArray** children
        ArrowArray* dictionary
        void (*release)(ArrowArray*) noexcept
        void* private_data


cdef struct DecodeBlock:
    Py_buffer view          # the frame's bytes, exported for as long as Arrow uses them
    # then: ArrowArray[na], ArrowArray*[children], const void*[3 * na]


cdef void release_batch(ArrowArray* a) noexcept with gil:
    """Arrow is done with a decoded batch: release the frame's buffer and the structs' block.

    ``a`` may be Arrow's own copy of the root struct (the importer moves it), so the block
    is found through ``private_data``.
    """
    cdef DecodeBlock* block = <DecodeBlock*>a.private_data
    a.release = NULL
    PyBuffer_Release(&block.view)
    free(block)


cdef void release_child(ArrowArray* a) noexcept nogil:
    a.release = NULL          # children live in the batch's block, freed with it


cdef void set_array(ArrowArray* a, int64_t n, int64_t nbuf, const void** bufs, int64_t validity_len) noexcept nogil:
    a.length = n
    a.null_count = -1 if validity_len > 0 else 0       # -1: Arrow counts them when asked
    a.offset = 0
    a.n_buffers = nbuf
    a.n_children = 0
    a.buffers = bufs
    a.children = NULL
    a.dictionary = NULL
    a.release = release_child
    a.private_data = NULL
    if validity_len == 0:
        bufs[0] = NULL


def decode(buf, schema_of):
    """A RecordBatch over the frame's own buffers (no copy, no per-column Python calls), after
    the cheap checks of ``frame_layout``: one ArrowArray per column, imported through the
    Arrow C data interface. The batch keeps ``buf`` exported (alive, unresizable).

    ``schema_of(names, types, key)`` gives the Arrow schema of a schema section; it is
    called once per distinct section (the result is kept with the section's parse).
    Raises ValueError for a bad frame.
    """
    cdef:
        DecodeBlock* block
        Py_buffer view
        const uint8_t* base
        Section sec
        int64_t n
        int flags
        Py_ssize_t dpos, ncols, nlists, c, b = 0, li = 0, na
        int t
        int64_t m
        ArrowArray* arrays
        ArrowArray** ptrs
        const void** bufs
        ArrowArray* a
        ArrowArray* ch
        const void** ab
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        base = <const uint8_t*>view.buf
        sec = parse_layout(base, view.len, &n, &flags, &dpos)
        schema = sec.arrow_schema
        if schema is None:
            schema = sec.arrow_schema = schema_of(sec.names, sec.types, sec.key)
    except BaseException:
        PyBuffer_Release(&view)
        raise
    ncols = sec.ncols
    nlists = sec.nlists
    na = 1 + ncols + nlists
    block = <DecodeBlock*>malloc(sizeof(DecodeBlock) + sizeof(ArrowArray) * na
                                 + sizeof(ArrowArray*) * (ncols + nlists) + sizeof(void*) * 3 * na)
    if block == NULL:
        PyBuffer_Release(&view)
        raise MemoryError()
    block.view = view
    arrays = <ArrowArray*>(block + 1)
    ptrs = <ArrowArray**>(arrays + na)
    bufs = <const void**>(ptrs + ncols + nlists)
    set_array(&arrays[0], n, 1, bufs, 0)            # the batch: a struct array without nulls
    arrays[0].n_children = ncols
    arrays[0].children = ptrs
    for c in range(ncols):
        t = sec.tcodes[c]
        a = &arrays[1 + c]
        ptrs[c] = a
        ab = bufs + 3 * (1 + c)
        ab[0] = base + dir_off(base, dpos, b)
        if is_fixed(t):
            ab[1] = base + dir_off(base, dpos, b + 1)
            set_array(a, n, 2, ab, dir_len(base, dpos, b))
        elif t == FT_STRING:
            ab[1] = base + dir_off(base, dpos, b + 1)
            ab[2] = base + dir_off(base, dpos, b + 2)
            set_array(a, n, 3, ab, dir_len(base, dpos, b))
        else:
            ab[1] = base + dir_off(base, dpos, b + 1)
            set_array(a, n, 2, ab, dir_len(base, dpos, b))
            m = ld_off(base + dir_off(base, dpos, b + 1), False, n)      # elements
            ch = &arrays[1 + ncols + li]
            ptrs[ncols + li] = ch
            a.n_children = 1
            a.children = &ptrs[ncols + li]
            ab = bufs + 3 * (1 + ncols + li)
            ab[0] = base + dir_off(base, dpos, b + 2)
            ab[1] = base + dir_off(base, dpos, b + 3)
            if is_fixed_list(t):
                set_array(ch, m, 2, ab, dir_len(base, dpos, b + 2))
            else:
                ab[2] = base + dir_off(base, dpos, b + 4)
                set_array(ch, m, 3, ab, dir_len(base, dpos, b + 2))
            li += 1
        b += type_buffers(t)
    arrays[0].private_data = <void*>block
    arrays[0].release = release_batch
    # Arrow takes the struct over, and releases it even when the import fails
    return _import_batch(<uintptr_t>arrays, schema)


_import_batch = pa.RecordBatch._import_from_c


# --- parsing and validation ----------------------------------------------------------------------

cdef class Section:
    """The parse of a frame's schema section (shared by the frames of a stream)."""
    cdef readonly bytes raw
    cdef readonly tuple key, types, colflags, names
    cdef readonly Py_ssize_t ncols, nlists
    cdef Py_ssize_t col_buffers         # buffers of the columns (the key's not included)
    cdef bytes tcodes                   # one type byte per column
    cdef public object arrow_schema     # set by ``decode``


_sections: dict = {}       # schema section bytes -> its Section
cdef Section _last_section = None


cdef Section _parse_section(bytes schema, Py_ssize_t ncols):
    """The parse of a frame's schema section for ``ncols`` columns (the section parses for
    one column count only); raises ValueError."""
    cdef const uint8_t* p = <const uint8_t*><char*>schema
    cdef Py_ssize_t pos = 0, end = len(schema), i, nk, b, t, expected = 0, nlists = 0
    cdef Section sec
    if pos + 4 > end:
        raise ValueError("schema section is truncated")
    nk = ld_u16(p + pos)
    pos += 4
    key = []
    for i in range(nk):
        if pos + 4 > end:
            raise ValueError("schema section is truncated")
        b = ld_u16(p + pos)
        if b >= ncols:
            raise ValueError(f"key column index {b} out of range")
        if p[pos + 2] > 1:
            raise ValueError("bad key direction")
        key.append((b, bool(p[pos + 2])))
        pos += 4
    types = []
    colflags = []
    names = []
    for i in range(ncols):
        if pos + 4 > end:
            raise ValueError("schema section is truncated")
        t = p[pos]
        if type_buffers(t) == 0 or t == FT_KEY:
            raise ValueError(f"unknown column type {t}")
        b = ld_u16(p + pos + 2)
        if pos + 4 + b > end:
            raise ValueError("schema section is truncated")
        types.append(t)
        colflags.append(p[pos + 1])
        try:
            names.append(schema[pos + 4:pos + 4 + b].decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError("column name is not UTF-8") from None
        pos += 4 + b
        expected += type_buffers(t)
        if not (is_fixed(t) or t == FT_STRING):
            nlists += 1
    if pos != end:
        raise ValueError("schema section has trailing bytes")
    sec = Section.__new__(Section)
    sec.raw = schema
    sec.key = tuple(key)
    sec.types = tuple(types)
    sec.colflags = tuple(colflags)
    sec.names = tuple(names)
    sec.ncols = ncols
    sec.nlists = nlists
    sec.col_buffers = expected
    sec.tcodes = bytes(types)
    sec.arrow_schema = None
    return sec


cdef inline int64_t dir_off(const uint8_t* p, Py_ssize_t dpos, Py_ssize_t b) noexcept nogil:
    return ld_u32(p + dpos + 8 * b)


cdef inline int64_t dir_len(const uint8_t* p, Py_ssize_t dpos, Py_ssize_t b) noexcept nogil:
    return ld_u32(p + dpos + 8 * b + 4)


cdef Section parse_layout(const uint8_t* p, Py_ssize_t size, int64_t* n_out, int* flags_out,
                          Py_ssize_t* dpos_out):
    """Header, schema section and buffer directory of a frame, with the cheap checks.

    Returns the section's parse; sets the row count, the flags and where the directory
    starts (entries: u32 offset, u32 length). Raises ValueError describing the problem.
    """
    global _last_section
    cdef Py_ssize_t pos, i, ncols, nbuf, expected, b, t
    cdef int64_t n, flags, frame_len, slen, prev, off, ln, m, data_start
    cdef Section sec
    if size < HDR:
        raise ValueError(f"frame of {size} bytes is shorter than its header")
    if memcmp(p, b"MSQF", 4) != 0:
        raise ValueError("bad frame magic")
    if ld_u16(p + 4) != VERSION:
        raise ValueError(f"unsupported frame version {ld_u16(p + 4)}")
    flags = ld_u16(p + 6)
    if flags & ~3:
        raise ValueError(f"unknown frame flags {flags:#x}")
    if (flags & F_SORTED) and not (flags & F_HAS_KEY):
        raise ValueError("frame is flagged sorted but has no key column")
    frame_len = ld_u32(p + 8)
    if frame_len != size:
        raise ValueError(f"frame header says {frame_len} bytes, buffer has {size}")
    if frame_len % 8:
        raise ValueError(f"frame length {frame_len} is not a multiple of 8")
    n = ld_u32(p + 12)
    ncols = ld_u32(p + 16)
    slen = ld_u32(p + 20)
    nbuf = ld_u32(p + 24)
    if HDR + slen > size:
        raise ValueError("schema section runs past the end of the frame")
    sec = _last_section
    if sec is None or len(sec.raw) != slen or memcmp(<const char*>sec.raw, p + HDR, slen) != 0:
        schema = (<const char*>p)[HDR:HDR + slen]
        sec = _sections.get(schema)
        if sec is None:
            sec = _parse_section(schema, ncols)
            if len(_sections) >= 256:
                _sections.clear()
            _sections[schema] = sec
        _last_section = sec
    if sec.ncols != ncols:
        raise ValueError(f"frame has {ncols} columns, its schema section {sec.ncols}")
    if (len(sec.key) > 0) != bool(flags & F_HAS_KEY):
        raise ValueError("key columns and the key flag disagree")
    expected = sec.col_buffers + (2 if flags & F_HAS_KEY else 0)
    if nbuf != expected:
        raise ValueError(f"frame has {nbuf} buffers, its schema needs {expected}")
    pos = HDR + pad8(slen)
    data_start = pos + pad8(8 * nbuf)
    if data_start > size:
        raise ValueError("buffer directory runs past the end of the frame")
    prev = data_start
    for b in range(nbuf):
        off = dir_off(p, pos, b)
        ln = dir_len(p, pos, b)
        if off % 8 or off < prev or off + ln > size:
            raise ValueError(f"buffer {b} at [{off}, {off + ln}) is misplaced")
        prev = off + ln
    # buffer lengths against the row count, and first/last offsets
    b = 0
    for i in range(ncols + (1 if flags & F_HAS_KEY else 0)):
        t = sec.tcodes[i] if i < ncols else FT_KEY
        if t == FT_KEY:
            _check_offsets_ends(p, pos, b, n, -1, 0)
        else:
            if dir_len(p, pos, b) != 0 and dir_len(p, pos, b) != (n + 7) // 8:
                raise ValueError(f"column {i}: validity has {dir_len(p, pos, b)} bytes for {n} rows")
            if is_fixed(t):
                if dir_len(p, pos, b + 1) != n * type_width(t):
                    raise ValueError(f"column {i}: {dir_len(p, pos, b + 1)} value bytes for {n} rows")
            elif t == FT_STRING:
                _check_offsets_ends(p, pos, b + 1, n, i, 0)
            else:
                m = _check_list_offsets(p, pos, b + 1, n, i)
                if dir_len(p, pos, b + 2) != 0 and dir_len(p, pos, b + 2) != (m + 7) // 8:
                    raise ValueError(f"column {i}: element validity has {dir_len(p, pos, b + 2)} bytes for {m} elements")
                if is_fixed_list(t):
                    if dir_len(p, pos, b + 3) != m * type_width(t):
                        raise ValueError(f"column {i}: {dir_len(p, pos, b + 3)} element bytes for {m} elements")
                else:
                    _check_offsets_ends(p, pos, b + 3, m, i, 1)
        b += type_buffers(t)
    n_out[0] = n
    flags_out[0] = <int>flags
    dpos_out[0] = pos
    return sec


def frame_layout(buf):
    """Parse a frame's header, schema and buffer directory, with the cheap checks.

    Returns ``(num_rows, flags, types, column_flags, names, key, directory, schema)`` where
    ``key`` is ``[(column_index, descending)]``, ``directory`` is ``[(offset, length)]`` per
    buffer and ``schema`` the raw schema section. Raises ValueError describing the problem.
    """
    cdef const uint8_t[::1] mv = u8(buf)
    cdef const uint8_t* p = &mv[0] if mv.shape[0] > 0 else <const uint8_t*>b""
    cdef int64_t n
    cdef int flags
    cdef Py_ssize_t dpos, b, nbuf
    cdef Section sec = parse_layout(p, mv.shape[0], &n, &flags, &dpos)
    nbuf = sec.col_buffers + (2 if flags & F_HAS_KEY else 0)
    directory = [(dir_off(p, dpos, b), dir_len(p, dpos, b)) for b in range(nbuf)]
    return (n, flags, list(sec.types), list(sec.colflags), list(sec.names), list(sec.key), directory, sec.raw)


cdef str _what(Py_ssize_t col, bint elements):
    return "key" if col < 0 else f"column {col} elements" if elements else f"column {col}"


cdef int _check_offsets_ends(const uint8_t* p, Py_ssize_t dpos, Py_ssize_t ob, int64_t n,
                             Py_ssize_t col, bint elements) except -1:
    """Offsets buffer ``ob`` (then its data buffer) holds n + 1 entries from 0 to the data's length."""
    cdef int64_t first, last
    if dir_len(p, dpos, ob) != 4 * (n + 1):
        raise ValueError(f"{_what(col, elements)}: {dir_len(p, dpos, ob)} offset bytes for {n} entries")
    first = ld_off(p + dir_off(p, dpos, ob), False, 0)
    last = ld_off(p + dir_off(p, dpos, ob), False, n)
    if first != 0 or last != dir_len(p, dpos, ob + 1):
        raise ValueError(f"{_what(col, elements)}: offsets span [{first}, {last}], data has {dir_len(p, dpos, ob + 1)} bytes")
    return 0


cdef int64_t _check_list_offsets(const uint8_t* p, Py_ssize_t dpos, Py_ssize_t ob, int64_t n,
                                 Py_ssize_t col) except -1:
    cdef int64_t first, last
    if dir_len(p, dpos, ob) != 4 * (n + 1):
        raise ValueError(f"column {col}: {dir_len(p, dpos, ob)} offset bytes for {n} entries")
    first = ld_off(p + dir_off(p, dpos, ob), False, 0)
    last = ld_off(p + dir_off(p, dpos, ob), False, n)
    if first != 0 or last < 0:
        raise ValueError(f"column {col}: list offsets span [{first}, {last}]")
    return last


cdef inline int64_t first_decrease(const uint8_t* o, int64_t n) noexcept nogil:
    """Index of the first offsets entry (1..n) smaller than its predecessor, or -1."""
    cdef int64_t i, prev, cur
    prev = ld_off(o, False, 0)
    for i in range(1, n + 1):
        cur = ld_off(o, False, i)
        if cur < prev:
            return i
        prev = cur
    return -1


cdef inline int key_cmp(const uint8_t* o, const uint8_t* d, int64_t a, int64_t b) noexcept nogil:
    cdef int64_t sa = ld_off(o, False, a), la = ld_off(o, False, a + 1) - sa
    cdef int64_t sb = ld_off(o, False, b), lb = ld_off(o, False, b + 1) - sb
    cdef int r = memcmp(d + sa, d + sb, <size_t>(la if la < lb else lb))
    if r != 0:
        return r
    return (la > lb) - (la < lb)


def check_frame(buf):
    """The O(n) checks: every offsets array is non-decreasing, the checksum matches and a
    frame flagged sorted has non-decreasing keys. Raises ValueError."""
    cdef const uint8_t[::1] mv = u8(buf)
    cdef const uint8_t* p = &mv[0]
    cdef int64_t bad, i, n, entries, off
    cdef Py_ssize_t b, c, t
    layout = frame_layout(buf)
    n = layout[0]
    flags = layout[1]
    types = layout[2]
    directory = layout[6]
    crc = frame_checksum(p + HDR, mv.shape[0] - HDR)
    if crc != ld_u32(p + 28):
        raise ValueError(f"frame checksum mismatch: stored {ld_u32(p + 28):#010x}, computed {crc:#010x}")
    b = 0
    for c in range(len(types) + (1 if flags & F_HAS_KEY else 0)):
        t = types[c] if c < len(types) else FT_KEY
        checks = []
        if t == FT_KEY:
            checks.append((b, n))
        elif t == FT_STRING or is_fixed_list(t):
            checks.append((b + 1, n))
        elif is_string_list(t):
            checks.append((b + 1, n))
            checks.append((b + 3, directory[b + 3][1] // 4 - 1))
        for ob, entries in checks:
            off = directory[ob][0]
            with nogil:
                bad = first_decrease(p + off, entries)
            if bad >= 0:
                raise ValueError(f"column {c}: offsets decrease at entry {bad}")
        b += type_buffers(t)
    if flags & F_SORTED and n > 1:
        _check_sorted(p + <int64_t>directory[b - 2][0], p + <int64_t>directory[b - 1][0], n)


cdef int _check_sorted(const uint8_t* o, const uint8_t* d, int64_t n) except -1:
    cdef int64_t i, bad = -1
    with nogil:
        for i in range(1, n):
            if key_cmp(o, d, i - 1, i) > 0:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"frame is flagged sorted but key {bad} is smaller than key {bad - 1}")
    return 0


# --- key statistics: group keys by their bucket prefix ----------------------------------------------

cdef inline uint64_t fnv1a(const uint8_t* p, int64_t n) noexcept nogil:
    cdef uint64_t h = 0xCBF29CE484222325ULL
    cdef int64_t i
    for i in range(n):
        h = (h ^ p[i]) * 0x100000001B3ULL
    return h


def bucket_ids(const int64_t[::1] offsets, const uint8_t[::1] data, const int64_t[::1] lengths,
               Py_ssize_t max_buckets):
    """Group keys by their first ``lengths[i]`` bytes (the bucket prefix).

    Returns ``(ids int32[n], first int64[b])``: ``ids[i]`` numbers row i's prefix in order of
    first appearance and ``first[j]`` is the first row with prefix j; or None when there
    are more than ``max_buckets`` distinct prefixes.
    """
    cdef:
        Py_ssize_t n = lengths.shape[0]
        Py_ssize_t i, nb = 0, cap = 16
        int64_t s, ln, r
        int32_t last = -1, b
        uint64_t slot
        bint overflow = False
        int32_t[::1] table
        int32_t[::1] ids
        int64_t[::1] first
        const uint8_t* d = NULL
    if offsets.shape[0] != n + 1:
        raise ValueError("offsets and lengths differ in length")
    if max_buckets < 1:
        raise ValueError("max_buckets must be positive")
    for i in range(n):
        if lengths[i] < 0 or offsets[i] < 0 or offsets[i] + lengths[i] > offsets[i + 1] \
                or offsets[i + 1] > data.shape[0]:
            raise ValueError(f"prefix of key {i} is out of bounds")
    if data.shape[0] > 0:
        d = &data[0]
    while cap < 2 * (max_buckets + 1):
        cap <<= 1
    table_arr = np.full(cap, -1, dtype=np.int32)
    ids_arr = np.empty(n, dtype=np.int32)
    first_arr = np.empty(max_buckets, dtype=np.int64)
    table = table_arr
    ids = ids_arr
    first = first_arr
    with nogil:
        for i in range(n):
            s = offsets[i]
            ln = lengths[i]
            if last >= 0:
                r = first[last]
                if lengths[r] == ln and memcmp(d + offsets[r], d + s, <size_t>ln) == 0:
                    ids[i] = last
                    continue
            slot = fnv1a(d + s, ln) & <uint64_t>(cap - 1)
            while True:
                b = table[slot]
                if b < 0:
                    if nb >= max_buckets:
                        overflow = True
                        break
                    table[slot] = <int32_t>nb
                    first[nb] = i
                    ids[i] = <int32_t>nb
                    last = <int32_t>nb
                    nb += 1
                    break
                r = first[b]
                if lengths[r] == ln and memcmp(d + offsets[r], d + s, <size_t>ln) == 0:
                    ids[i] = b
                    last = b
                    break
                slot = (slot + 1) & <uint64_t>(cap - 1)
            if overflow:
                break
    if overflow:
        return None
    return ids_arr, first_arr[:nb].copy()
