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
 * 32768 nodes), one that walks 16 neighbouring pixels per vector: their bins
 * sit feature-major in three registers, byte permutes pick each lane's bin and
 * one gather fetches the 16 next nodes; eight such groups are interleaved, and
 * a group takes the next 16 pixels as soon as all its lanes are at leaves.
 * A gather is slow on some CPUs (18 cycles for 16 lanes on AMD Zen 4): so the first five levels of every
 * tree come from two registers instead (descend_top), a tree's 31 top nodes breadth first, indexed by one
 * two-source permute; only the levels below are gathered. The vector walk reads the same trees in its own
 * node layout (see goes_left). Which walk runs is chosen by timing both (forest.py).
 */
#ifdef FOREST_RECIPE /* the install-time build (setup.py) is an importable (empty) extension module too */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK 2048
#define LEAF 0x80000000u
#define TOP_WORDS 96 /* vector walk: per tree, 32 words breadth first, then level 5's 32 indices and 32 words */
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

typedef struct { __m512i t0, t1, t2, x, w; int32_t chunk; } Group;

VECTOR static void transpose(const uint8_t *bins, int32_t m, uint8_t *chunks) {
    for (int32_t i = 0; i < (m + 15) / 16 * 16; ++i)
        for (int f = 0; f < 12; ++f) chunks[i / 16 * CHUNK + f * 16 + i % 16] = i < m ? bins[i * 16 + f] : 0;
}

/* Lanes whose bin of w's feature is <= w's rank (they go left). Node words here are the vector layout:
 * bits 0-7 16 * feature, 8-15 rank, 16-30 right child, 31 leaf. */
VECTOR static inline __mmask16 goes_left(const Group *g, __m512i w) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __mmask64 low = 0x1111111111111111ull;
    __m512i index = _mm512_add_epi32(w, lanes);
    __m512i bin = _mm512_maskz_permutex2var_epi8(low, g->t0, index, g->t1);
    bin = _mm512_mask_permutexvar_epi8(bin, _mm512_test_epi8_mask(w, _mm512_set1_epi32(128)), index, g->t2);
    return _mm512_cmple_epu32_mask(bin, _mm512_and_si512(_mm512_srli_epi32(w, 8), _mm512_set1_epi32(255)));
}

/* The first TOP levels without gathers: top holds the tree's first 31 nodes breadth first (a complete tree,
 * a leaf standing in for its missing descendants), then the preorder index and word of the 32 nodes at
 * level TOP; node i's children are 2i + 1 (left) and 2i + 2. */
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
    g->w = _mm512_permutex2var_epi32(_mm512_loadu_si512(top + 64), i, _mm512_loadu_si512(top + 80));
}

VECTOR static inline void begin(Group *g, const uint8_t *chunks, int32_t chunk, const uint32_t *top) {
    const uint8_t *c = chunks + (ptrdiff_t)chunk * CHUNK;
    g->t0 = _mm512_loadu_si512(c); g->t1 = _mm512_loadu_si512(c + 64); g->t2 = _mm512_loadu_si512(c + 128);
    g->chunk = chunk;
    descend_top(g, top);
}

/* One step of 16 lanes: each lane not at a leaf moves to the child its bin selects. */
VECTOR static inline void advance(Group *g, const uint32_t *nodes, __mmask16 inner) { /* x: any for leaves */
    g->x = _mm512_mask_add_epi32(_mm512_srli_epi32(g->w, 16), goes_left(g, g->w), g->x, _mm512_set1_epi32(1));
    g->w = _mm512_mask_i32gather_epi32(g->w, inner, g->x, nodes, 4);
}

/* Add one tree's leaf value (values) to the sum (acc) of every pixel of n_chunks chunks (16 pixels each). */
VECTOR static void tree_vector(const uint32_t *nodes, const uint32_t *top, const uint8_t *chunks, int32_t n_chunks,
                               const double *values, double *acc) {
    const __m512i leaf = _mm512_set1_epi32((int)LEAF);
    Group groups[GROUPS];
    int32_t next = 0, active = 0;
    for (int i = 0; i < GROUPS; ++i) {
        groups[i].chunk = -1, groups[i].w = leaf; /* idle until begun */
        if (next < n_chunks) begin(&groups[i], chunks, next++, top), ++active;
    }
    while (active) {
        for (int i = 0; i < GROUPS; ++i) {
            Group *g = &groups[i];
            __mmask16 inner = (__mmask16)~_mm512_test_epi32_mask(g->w, leaf);
            if (inner) {
                advance(g, nodes, inner);
            } else if (g->chunk >= 0) {
                __m512i index = _mm512_andnot_si512(leaf, g->w);
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
static void tree_vector(const uint32_t *nodes, const uint32_t *top, const uint8_t *chunks, int32_t n_chunks,
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

/* Probability of n pixels: bins (n x 16 bytes), trees starting at node_offsets, sigmoid alpha. vector = 1
 * walks vector_nodes from each tree's TOP_WORDS words of vector_tops down and adds leaves (by leaf index, from
 * leaf_offsets) where the CPU can; else the portable walk over nodes adds node_values (by node). */
void forest_probability(const uint8_t *bins, ptrdiff_t n, int32_t n_trees, const int64_t *node_offsets,
                        const uint32_t *nodes, const double *node_values, const double *leaves,
                        const int64_t *leaf_offsets, double alpha, const uint32_t *vector_nodes,
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
                tree_vector(vector_nodes + node_offsets[t], vector_tops + (ptrdiff_t)t * TOP_WORDS, chunks,
                            (m + 15) / 16, leaves + leaf_offsets[t], acc);
            else
                tree_portable(nodes + node_offsets[t], node_values + node_offsets[t], block, m, acc);
        }
        for (int32_t i = 0; i < m; ++i) out[start + i] = (float)(1.0 / (1.0 + exp(-alpha * acc[i])));
    }
}
