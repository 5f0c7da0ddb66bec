/* Exact evaluation of a binned LightGBM forest (cube/forest.py builds the inputs).
 *
 * Every pixel is 16 bytes: the bin of each feature (bin <= rank of a node's
 * threshold <=> feature <= threshold, exactly as LightGBM decides in double).
 * Trees are laid out in preorder, so a node's left child is the next node.
 * A node is one 32-bit word: bit 31 set for a leaf (bits 0-30: leaf index),
 * else bits 0-3 feature, 4-11 rank, 12-30 index of the right child.
 * Pixels go through the forest in blocks, tree by tree (a tree's nodes stay in
 * L1), eight pixels at a time so that their node chains overlap. Each pixel
 * adds its trees' leaf values in tree order in double, then the sigmoid, as
 * LightGBM does; the result is rounded to float32 as s2cloudless does.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK 2048
#define LEAF 0x80000000u
#define STEP(w, x, p)                                                   \
    if (!((w) & LEAF)) {                                                \
        (x) = (p)[(w) & 15u] <= (((w) >> 4) & 255u) ? (x) + 1 : (w) >> 12; \
        (w) = nodes[x];                                                 \
    }

static void eight(const uint32_t *nodes, const double *leaves, const uint8_t *p, double *acc) {
    uint32_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0;
    uint32_t wa = nodes[0], wb = wa, wc = wa, wd = wa, we = wa, wf = wa, wg = wa, wh = wa;
    while (!(wa & wb & wc & wd & we & wf & wg & wh & LEAF)) {
        STEP(wa, a, p) STEP(wb, b, p + 16) STEP(wc, c, p + 32) STEP(wd, d, p + 48)
        STEP(we, e, p + 64) STEP(wf, f, p + 80) STEP(wg, g, p + 96) STEP(wh, h, p + 112)
    }
    acc[0] += leaves[wa & ~LEAF]; acc[1] += leaves[wb & ~LEAF]; acc[2] += leaves[wc & ~LEAF];
    acc[3] += leaves[wd & ~LEAF]; acc[4] += leaves[we & ~LEAF]; acc[5] += leaves[wf & ~LEAF];
    acc[6] += leaves[wg & ~LEAF]; acc[7] += leaves[wh & ~LEAF];
}

static void one(const uint32_t *nodes, const double *leaves, const uint8_t *p, double *acc) {
    uint32_t x = 0, w = nodes[0];
    while (!(w & LEAF)) STEP(w, x, p)
    acc[0] += leaves[w & ~LEAF];
}

/* Probability of n pixels: bins (n x 16 bytes), trees given by node and leaf offsets, sigmoid alpha. */
void forest_probability(const uint8_t *bins, ptrdiff_t n, int32_t n_trees, const uint32_t *nodes,
                        const int64_t *node_offsets, const double *leaves, const int64_t *leaf_offsets,
                        double alpha, float *out) {
    double acc[BLOCK];
    for (ptrdiff_t start = 0; start < n; start += BLOCK) {
        ptrdiff_t m = n - start < BLOCK ? n - start : BLOCK;
        const uint8_t *block = bins + start * 16;
        for (ptrdiff_t i = 0; i < m; ++i) acc[i] = 0.0;
        for (int32_t t = 0; t < n_trees; ++t) {
            ptrdiff_t i = 0;
            for (; i + 8 <= m; i += 8)
                eight(nodes + node_offsets[t], leaves + leaf_offsets[t], block + i * 16, acc + i);
            for (; i < m; ++i)
                one(nodes + node_offsets[t], leaves + leaf_offsets[t], block + i * 16, acc + i);
        }
        for (ptrdiff_t i = 0; i < m; ++i) out[start + i] = (float)(1.0 / (1.0 + exp(-alpha * acc[i])));
    }
}
