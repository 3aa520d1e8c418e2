/*
 * Felzenszwalb-Huttenlocher graph segmentation at several scales of one
 * image, sharing the sorted edge list between the scales.
 *
 * The merge rule, the small-segment pass and the labelling are those of
 * scikit-image's ``felzenszwalb`` (8-connected grid, edges processed in the
 * order of ``numpy.argsort`` of their costs, the merge threshold of each
 * segment rounded to single precision, segments relabelled in the order of
 * their first pixel), so that every label map equals scikit-image's for the
 * same smoothed image. What differs is the work: the caller sorts the edges
 * once for all scales; the union-find joins by size and halves paths (the
 * decisions depend on segments, not on which pixel is their root, and each
 * segment's first pixel is tracked for the labels); each segment's threshold
 * is computed once per merge; the small-segment pass visits only the edges
 * the first pass refused; and with ``pick`` only the requested pixels are
 * labelled.
 *
 * Plain C with the Python buffer protocol; no NumPy headers are needed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

/* One record per pixel: the fields read together share a cache line. */
typedef struct {
    int32_t parent;  /* union-find parent (a root is its own parent) */
    int32_t size;    /* pixels of the segment (valid at roots) */
    float thr;       /* merge threshold of the segment (valid at roots) */
    int32_t first;   /* smallest pixel index of the segment (valid at roots) */
} node_t;

static inline int32_t find_root(node_t *node, int32_t x)
{
    while (node[x].parent != x) {
        node[x].parent = node[node[x].parent].parent;  /* path halving */
        x = node[x].parent;
    }
    return x;
}

/* Endpoints of edge ``e`` in scikit-image's order: right, down,
 * down-right and up-right edges, each block in raster order. */
static void edge_ends(Py_ssize_t e, Py_ssize_t h, Py_ssize_t w,
                      int32_t *a, int32_t *b)
{
    Py_ssize_t n_right = h * (w - 1), n_down = (h - 1) * w;
    Py_ssize_t n_diag = (h - 1) * (w - 1), r, c;
    if (e < n_right) {
        r = e / (w - 1); c = e % (w - 1);
        *a = (int32_t)(r * w + c + 1); *b = (int32_t)(r * w + c);
        return;
    }
    e -= n_right;
    if (e < n_down) {
        r = e / w; c = e % w;
        *a = (int32_t)((r + 1) * w + c); *b = (int32_t)(r * w + c);
        return;
    }
    e -= n_down;
    if (e < n_diag) {
        r = e / (w - 1); c = e % (w - 1);
        *a = (int32_t)((r + 1) * w + c + 1); *b = (int32_t)(r * w + c);
        return;
    }
    e -= n_diag;
    r = e / (w - 1); c = e % (w - 1);
    *a = (int32_t)(r * w + c + 1); *b = (int32_t)((r + 1) * w + c);
}

static void segment_one(const int32_t *ea, const int32_t *eb, const double *cost,
                        Py_ssize_t n_edges, Py_ssize_t n_pixels, double scale,
                        Py_ssize_t min_size, node_t *node, int32_t *kept,
                        int32_t *rank, const Py_ssize_t *pick, Py_ssize_t n_pick,
                        Py_ssize_t *labels)
{
    /* thr is scikit-image's single-precision merge threshold of a segment,
     * cint + scale / size; it changes only when the segment grows, so it is
     * computed once per merge instead of twice per edge. Segments are joined
     * by size; the labels are numbered by each segment's first pixel, as
     * scikit-image's (whose roots are the segments' first pixels). With
     * ``pick`` (n_pick pixel indices), only those pixels' labels are written,
     * from each segment's tracked first pixel: no find per pixel. */
    Py_ssize_t i, k, j, n_kept = 0, next = 0;
    int32_t r0, r1, lo, hi;
    float t;
    const float t_single = (float)(0.0 + scale / 1.0);
    for (i = 0; i < n_pixels; i++) {
        node[i].parent = (int32_t)i; node[i].size = 1; node[i].thr = t_single;
        node[i].first = (int32_t)i;
    }
    for (k = 0; k < n_edges; k++) {
        r0 = find_root(node, ea[k]);
        r1 = find_root(node, eb[k]);
        if (r0 == r1) continue;
        t = node[r1].thr < node[r0].thr ? node[r1].thr : node[r0].thr;
        if (cost[k] < (double)t) {
            lo = node[r0].size < node[r1].size ? r1 : r0; hi = lo == r0 ? r1 : r0;
            node[hi].parent = lo;
            node[lo].size += node[hi].size;
            node[lo].thr = (float)(cost[k] + scale / (double)node[lo].size);
            if (node[hi].first < node[lo].first) node[lo].first = node[hi].first;
        } else {
            kept[n_kept++] = (int32_t)k;
        }
    }
    /* Segments only grow, so an edge inside one segment stays inside:
     * the small-segment pass needs only the edges the first pass refused. */
    for (j = 0; j < n_kept; j++) {
        k = kept[j];
        r0 = find_root(node, ea[k]);
        r1 = find_root(node, eb[k]);
        if (r0 == r1) continue;
        if (node[r0].size < min_size || node[r1].size < min_size) {
            lo = node[r0].size < node[r1].size ? r1 : r0; hi = lo == r0 ? r1 : r0;
            node[hi].parent = lo;
            node[lo].size += node[hi].size;
            if (node[hi].first < node[lo].first) node[lo].first = node[hi].first;
        }
    }
    if (pick != NULL) {
        /* rank[p]: number of segments whose first pixel comes before p */
        for (i = 0; i < n_pixels; i++)
            rank[i] = 0;
        for (i = 0; i < n_pixels; i++)
            if (node[i].parent == i)
                rank[node[i].first] = 1;
        for (i = 0, next = 0; i < n_pixels; i++) {
            int32_t is_first = rank[i];
            rank[i] = (int32_t)next;
            next += is_first;
        }
        for (j = 0; j < n_pick; j++)
            labels[j] = rank[node[find_root(node, (int32_t)pick[j])].first];
        return;
    }
    for (i = 0; i < n_pixels; i++)
        node[i].size = -1;  /* reused: label of each root */
    for (i = 0; i < n_pixels; i++) {
        r0 = find_root(node, (int32_t)i);
        if (node[r0].size < 0)
            node[r0].size = (int32_t)next++;
        labels[i] = node[r0].size;
    }
}

static int check_buffer(Py_buffer *buf, const char *name, Py_ssize_t itemsize,
                        Py_ssize_t n_items)
{
    if (buf->itemsize != itemsize || buf->len != itemsize * n_items) {
        PyErr_Format(PyExc_ValueError,
                     "%s must hold %zd items of %zd bytes; got %zd bytes of "
                     "items of %zd bytes", name, n_items, itemsize, buf->len,
                     buf->itemsize);
        return -1;
    }
    return 0;
}

static PyObject *multiscale(PyObject *self, PyObject *args)
{
    Py_buffer order = {0}, costs = {0}, scales = {0}, out = {0}, pick = {0};
    PyObject *pick_obj = Py_None;
    Py_ssize_t h, w, min_size, n_edges, n_pixels, n_scales, n_pick, s, k;
    int32_t *ea = NULL, *eb = NULL, *kept = NULL, *rank = NULL;
    node_t *node = NULL;
    double *cost = NULL;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*nny*nw*|O", &order, &costs, &h, &w, &scales,
                          &min_size, &out, &pick_obj))
        return NULL;
    if (pick_obj != Py_None &&
        PyObject_GetBuffer(pick_obj, &pick, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (h < 2 || w < 2 || h * w > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "the image must be at least 2 x 2 and below 2**31 pixels");
        goto done;
    }
    n_pixels = h * w;
    n_edges = h * (w - 1) + (h - 1) * w + 2 * (h - 1) * (w - 1);
    n_scales = scales.len / (Py_ssize_t)sizeof(double);
    n_pick = pick.obj != NULL ? pick.len / (Py_ssize_t)sizeof(Py_ssize_t) : n_pixels;
    if (check_buffer(&order, "order", sizeof(Py_ssize_t), n_edges) ||
        check_buffer(&costs, "costs", sizeof(double), n_edges) ||
        check_buffer(&scales, "scales", sizeof(double), n_scales) ||
        (pick.obj != NULL && check_buffer(&pick, "pick", sizeof(Py_ssize_t), n_pick)) ||
        check_buffer(&out, "out", sizeof(Py_ssize_t), n_scales * n_pick))
        goto done;
    if (pick.obj != NULL) {
        const Py_ssize_t *p = (const Py_ssize_t *)pick.buf;
        for (k = 0; k < n_pick; k++) {
            if (p[k] < 0 || p[k] >= n_pixels) {
                PyErr_SetString(PyExc_ValueError, "pick holds a pixel index out of range");
                goto done;
            }
        }
    }
    ea = malloc(n_edges * sizeof(int32_t));
    eb = malloc(n_edges * sizeof(int32_t));
    cost = malloc(n_edges * sizeof(double));
    kept = malloc(n_edges * sizeof(int32_t));
    node = malloc(n_pixels * sizeof(node_t));
    rank = malloc(n_pixels * sizeof(int32_t));
    if (!ea || !eb || !cost || !kept || !node || !rank) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const Py_ssize_t *ord = (const Py_ssize_t *)order.buf;
        const double *c = (const double *)costs.buf;
        const double *sc = (const double *)scales.buf;
        Py_ssize_t *labels = (Py_ssize_t *)out.buf;
        int bad = 0;
        Py_BEGIN_ALLOW_THREADS
        for (k = 0; k < n_edges; k++) {
            if (ord[k] < 0 || ord[k] >= n_edges) { bad = 1; break; }
            edge_ends(ord[k], h, w, &ea[k], &eb[k]);
            cost[k] = c[ord[k]];
        }
        if (!bad) {
            for (s = 0; s < n_scales; s++)
                segment_one(ea, eb, cost, n_edges, n_pixels, sc[s] / 255.0,
                            min_size, node, kept, rank,
                            pick.obj != NULL ? (const Py_ssize_t *)pick.buf : NULL,
                            n_pick, labels + s * n_pick);
        }
        Py_END_ALLOW_THREADS
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "order holds an edge index out of range");
            goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(ea); free(eb); free(cost); free(kept); free(node); free(rank);
    if (pick.obj != NULL)
        PyBuffer_Release(&pick);
    PyBuffer_Release(&order); PyBuffer_Release(&costs);
    PyBuffer_Release(&scales); PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"multiscale", multiscale, METH_VARARGS,
     "multiscale(order, costs, height, width, scales, min_size, out, pick=None)\n\n"
     "Felzenszwalb label maps of one image at every scale, written to ``out``\n"
     "(intp, scales x height x width). ``order`` is numpy.argsort(costs) of\n"
     "the 8-connected edge costs in scikit-image's order; ``scales`` is\n"
     "float64. With ``pick`` (intp pixel indices), only the labels of those\n"
     "pixels are written (``out``: scales x len(pick)). The GIL is released\n"
     "while segmenting."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_felzenszwalb",
    "Multi-scale Felzenszwalb segmentation kernel (see _segmentation.py).",
    -1, methods
};

PyMODINIT_FUNC PyInit__felzenszwalb(void)
{
    return PyModule_Create(&moduledef);
}
