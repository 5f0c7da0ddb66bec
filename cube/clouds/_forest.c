/* Exact evaluation of a binned LightGBM forest (cube/forest.py builds the inputs).
 *
 * Every pixel is 16 bytes: the bin of each feature (bin <= rank of a node's
 * threshold <=> feature <= threshold, exactly as LightGBM decides in double).
 * Trees are laid out in preorder, so a node's left child is the next node.
 * A node is one 32-bit word: bit 31 set for a leaf (bits 0-30: leaf index),
 * else bits 0-3 feature, 4-11 rank, 12-30 index of the right child.
 * Pixels go through the forest in blocks, tree by tree (a tree's nodes stay in
 * L1); each pixel's leaf of the tree is added to its sum in double, so every
 * pixel adds its leaves in tree order, then the sigmoid, as LightGBM does; the
 * result is rounded to float32 as s2cloudless does.
 *
 * Two walks give the same leaves: a portable one (eight pixels at a time so
 * that their node chains overlap) and, where the CPU has AVX-512 VBMI (checked
 * at run time) and the forest fits (at most 12 features, trees of at most
 * 32768 nodes and 65536 4-ary nodes), one that walks 16 neighbouring pixels per vector: their bins
 * sit feature-major in three registers, byte permutes pick each lane's bin and
 * two 8-lane gathers fetch the 16 next nodes; eight such groups are interleaved, and
 * a group takes the next 16 pixels as soon as all its lanes are at leaves.
 * A gather is slow on some CPUs (18 cycles for 16 lanes on AMD Zen 4): so the first five levels of every
 * tree come from two registers instead (descend_top), a tree's 31 top nodes breadth first, indexed by one
 * two-source permute; below them each gathered node decides two levels (a 4-ary layout, see advance).
 * Which walk runs is chosen by timing both (forest.py).
 */
#ifdef FOREST_RECIPE /* the install-time build (setup.py) is an importable (empty) extension module too */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK 2048
#define TOP_WORDS 128 /* vector walk, per tree: 32 words breadth first, level 5's 32 indices, low and high halves */
#define CHUNK 192 /* vector walk: bins of 16 pixels, feature-major (byte 16 * feature + lane), features 0-11 */
/* Portable walk: a split's word is (rank + 1) | feature << 8 | right child << 16, a leaf's itself << 16. bin <
 * rank + 1 goes left (the next node), else right; a leaf (rank + 1 = 0) goes "right" to itself, so eight pixels
 * step together with no test per pixel (a branch that mispredicts at every leaf) until all are at leaves. Rank,
 * feature and right child each take one instruction to extract (low byte, second byte, top half; forest.py
 * refuses trees of more than 32768 leaves, 65535 nodes). */
#define STEP(w, x, p) (x) = (p)[(w) >> 8 & 255u] < ((w) & 255u) ? (x) + 1 : (w) >> 16, (w) = nodes[x];
#define PORTABLE_LEAF(w) (((w) & 255u) == 0)

/* Add one tree's leaf value (values, by node) to the sums (acc) of eight pixels (bins p, 16 bytes each). */
static void eight(const uint32_t *nodes, const double *values, const uint8_t *p, double *acc) {
    uint32_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0;
    uint32_t wa = nodes[0], wb = wa, wc = wa, wd = wa, we = wa, wf = wa, wg = wa, wh = wa;
    while (!PORTABLE_LEAF(wa | wb | wc | wd | we | wf | wg | wh)) {
        STEP(wa, a, p) STEP(wb, b, p + 16) STEP(wc, c, p + 32) STEP(wd, d, p + 48)
        STEP(we, e, p + 64) STEP(wf, f, p + 80) STEP(wg, g, p + 96) STEP(wh, h, p + 112)
    }
    acc[0] += values[a], acc[1] += values[b], acc[2] += values[c], acc[3] += values[d];
    acc[4] += values[e], acc[5] += values[f], acc[6] += values[g], acc[7] += values[h];
}

/* Add one tree's leaf value to the sum (acc) of each of m pixels (bins, 16 bytes each), portable. */
static void tree_portable(const uint32_t *nodes, const double *values, const uint8_t *bins, int32_t m, double *acc) {
    int32_t i = 0;
    for (; i + 8 <= m; i += 8) eight(nodes, values, bins + i * 16, acc + i);
    for (; i < m; ++i) {
        uint32_t x = 0, w = nodes[0];
        while (!PORTABLE_LEAF(w)) {
            STEP(w, x, bins + i * 16)
        }
        acc[i] += values[x];
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VECTOR __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#define GROUPS 8
#define TOP 5         /* levels walked from registers (descend_top) */
#define TOP_NODES 31  /* nodes above level TOP */

typedef struct { __m512i t0, t1, t2, x, low, high; int32_t chunk; } Group;

VECTOR static void transpose(const uint8_t *bins, int32_t m, uint8_t *chunks) {
    for (int32_t i = 0; i < (m + 15) / 16 * 16; ++i)
        for (int f = 0; f < 12; ++f) chunks[i / 16 * CHUNK + f * 16 + i % 16] = i < m ? bins[i * 16 + f] : 0;
}

/* Lanes whose bin of w's feature is <= w's rank (they go left): w's bits 0-7 are 16 * feature, 8-15 the rank. */
VECTOR static inline __mmask16 goes_left(const Group *g, __m512i w) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __mmask64 low = 0x1111111111111111ull;
    __m512i index = _mm512_add_epi32(w, lanes);
    __m512i bin = _mm512_maskz_permutex2var_epi8(low, g->t0, index, g->t1);
    bin = _mm512_mask_permutexvar_epi8(bin, _mm512_test_epi8_mask(w, _mm512_set1_epi32(128)), index, g->t2);
    return _mm512_cmple_epu32_mask(bin, _mm512_and_si512(_mm512_srli_epi32(w, 8), _mm512_set1_epi32(255)));
}

/* The first TOP levels without gathers: top holds the tree's first 31 nodes breadth first (a complete tree,
 * a leaf standing in for its missing descendants; bits 0-15 as goes_left reads them), then the 4-ary index
 * and the two halves of the 4-ary node of each of the 32 nodes at level TOP; node i's children are 2i + 1
 * (left) and 2i + 2. */
VECTOR static inline void descend_top(Group *g, const uint32_t *top) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i words0 = _mm512_loadu_si512(top), words1 = _mm512_loadu_si512(top + 16);
    __m512i i = _mm512_setzero_si512();
    for (int level = 0; level < TOP; ++level) {
        __mmask16 left = goes_left(g, _mm512_permutex2var_epi32(words0, i, words1));
        i = _mm512_add_epi32(_mm512_add_epi32(i, i), one);
        i = _mm512_mask_add_epi32(i, (__mmask16)~left, i, one);
    }
    i = _mm512_sub_epi32(i, _mm512_set1_epi32(TOP_NODES));
    g->x = _mm512_permutex2var_epi32(_mm512_loadu_si512(top + 32), i, _mm512_loadu_si512(top + 48));
    g->low = _mm512_permutex2var_epi32(_mm512_loadu_si512(top + 64), i, _mm512_loadu_si512(top + 80));
    g->high = _mm512_permutex2var_epi32(_mm512_loadu_si512(top + 96), i, _mm512_loadu_si512(top + 112));
}

VECTOR static inline void begin(Group *g, const uint8_t *chunks, int32_t chunk, const uint32_t *top) {
    const uint8_t *c = chunks + (ptrdiff_t)chunk * CHUNK;
    g->t0 = _mm512_loadu_si512(c); g->t1 = _mm512_loadu_si512(c + 64); g->t2 = _mm512_loadu_si512(c + 128);
    g->chunk = chunk;
    descend_top(g, top);
}

/* Lanes not at a leaf (a leaf's first split has rank 255: every bin goes left). */
VECTOR static inline __mmask16 inner_lanes(const Group *g) {
    const __m512i rank = _mm512_set1_epi32(0xFF00);
    return _mm512_cmpneq_epi32_mask(_mm512_and_si512(g->low, rank), rank);
}

/* Two levels of 16 lanes. A 4-ary node is 64 bits: the low half holds a split (bits 0-15, goes_left's
 * layout) and the split of its left child (bits 16-31), the high half the split of its right child (bits
 * 0-15) and the index of the four grandchildren (bits 16-31; left-left, left-right, right-left, right-right).
 * A leaf child is an always-left split (rank 255) to a leaf node; a leaf's splits go left to itself, so lanes
 * at leaves need no mask (unmasked gathers: 1.04x typical, 0.97-1.10x over 26 A/B runs on Zen 4). */
VECTOR static inline void advance(Group *g, const uint64_t *nodes) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __mmask16 left = goes_left(g, g->low);
    __mmask16 second = goes_left(g, _mm512_mask_blend_epi32(left, g->high, _mm512_srli_epi32(g->low, 16)));
    __m512i x = _mm512_srli_epi32(g->high, 16);
    x = _mm512_mask_add_epi32(x, (__mmask16)~left, x, _mm512_set1_epi32(2));
    g->x = _mm512_mask_add_epi32(x, (__mmask16)~second, x, _mm512_set1_epi32(1));
    __m512i first8 = _mm512_i32gather_epi64(_mm512_castsi512_si256(g->x), (const long long *)nodes, 8);
    __m512i last8 = _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(g->x, 1), (const long long *)nodes, 8);
    g->low = _mm512_permutex2var_epi32(first8, even, last8);
    g->high = _mm512_permutex2var_epi32(first8, odd, last8);
}

/* Add one tree's leaf value (values, by 4-ary node) to the sum (acc) of every pixel of n_chunks chunks (16
 * pixels each). */
VECTOR static void tree_vector(const uint64_t *nodes, const uint32_t *top, const uint8_t *chunks, int32_t n_chunks,
                               const double *values, double *acc) {
    Group groups[GROUPS];
    int32_t next = 0, active = 0;
    for (int i = 0; i < GROUPS; ++i) {
        groups[i].chunk = -1, groups[i].low = _mm512_set1_epi32(0xFF00); /* idle (at a leaf) until begun */
        if (next < n_chunks) begin(&groups[i], chunks, next++, top), ++active;
    }
    while (active) {
        for (int i = 0; i < GROUPS; ++i) {
            Group *g = &groups[i];
            if (inner_lanes(g)) {
                advance(g, nodes);
            } else if (g->chunk >= 0) {
                __m512i index = g->x;
                double *sum = acc + g->chunk * 16;
                __m512d low = _mm512_i32gather_pd(_mm512_castsi512_si256(index), values, 8);
                __m512d high = _mm512_i32gather_pd(_mm512_extracti64x4_epi64(index, 1), values, 8);
                _mm512_storeu_pd(sum, _mm512_add_pd(_mm512_loadu_pd(sum), low));
                _mm512_storeu_pd(sum + 8, _mm512_add_pd(_mm512_loadu_pd(sum + 8), high));
                g->chunk = -1;
                if (next < n_chunks) begin(g, chunks, next++, top); else --active;
            }
        }
    }
}

static int has_vector(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
}
#else
static int has_vector(void) { return 0; }
static void transpose(const uint8_t *bins, int32_t m, uint8_t *chunks) { (void)bins, (void)m, (void)chunks; }
static void tree_vector(const uint64_t *nodes, const uint32_t *top, const uint8_t *chunks, int32_t n_chunks,
                        const double *values, double *acc) {
    (void)nodes, (void)top, (void)chunks, (void)n_chunks, (void)values, (void)acc; /* never called: has_vector() is 0 */
}
#endif

/* 1 where the vector walk runs on this CPU. */
int forest_vector(void) { return has_vector(); }

#ifdef FOREST_RECIPE
/* What an install-time build (setup.py) was made from: "<sha256 of this file> <machine>". forest.py uses an
 * installed kernel only where this names its own source and machine; the run-time build is checked by its cache. */
const char *forest_recipe(void) { return FOREST_RECIPE; }

/* Nothing to import: forest.py loads this file with ctypes. The module exists so that importing the name
 * (pkgutil.walk_packages over cube, for one) finds an empty module, not an ImportError. */
static struct PyModuleDef forest_module = {PyModuleDef_HEAD_INIT, "_forest", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__forest(void) { return PyModule_Create(&forest_module); }
#endif

/* Probability of n pixels: bins (n x 16 bytes), sigmoid alpha. vector = 1 walks each tree's 4-ary nodes (from
 * vector_offsets in vector_nodes) from its TOP_WORDS words of vector_tops down and adds vector_values (by 4-ary
 * node) where the CPU can; else the portable walk over nodes (trees from node_offsets) adds node_values. */
void forest_probability(const uint8_t *bins, ptrdiff_t n, int32_t n_trees, const int64_t *node_offsets,
                        const uint32_t *nodes, const double *node_values, const int64_t *vector_offsets,
                        const uint64_t *vector_nodes, const double *vector_values, double alpha,
                        const uint32_t *vector_tops, int32_t vector, float *out) {
    double acc[BLOCK];
    uint8_t chunks[BLOCK / 16 * CHUNK];
    vector = vector && has_vector();
    for (ptrdiff_t start = 0; start < n; start += BLOCK) {
        int32_t m = n - start < BLOCK ? (int32_t)(n - start) : BLOCK;
        const uint8_t *block = bins + start * 16;
        if (vector) transpose(block, m, chunks);
        for (int32_t i = 0; i < (m + 15) / 16 * 16; ++i) acc[i] = 0.0;
        for (int32_t t = 0; t < n_trees; ++t) {
            if (vector)
                tree_vector(vector_nodes + vector_offsets[t], vector_tops + (ptrdiff_t)t * TOP_WORDS, chunks,
                            (m + 15) / 16, vector_values + vector_offsets[t], acc);
            else
                tree_portable(nodes + node_offsets[t], node_values + node_offsets[t], block, m, acc);
        }
        for (int32_t i = 0; i < m; ++i) out[start + i] = (float)(1.0 / (1.0 + exp(-alpha * acc[i])));
    }
}
