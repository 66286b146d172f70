/* One-pass statistics of float32 CPU tensors for the recorder's CPU fast path (host_stats.py).

numpy and torch need a pass (and often a temporary array) per quantity: the minimum, the
maximum, the sum, the sum of squares, the count of x <= 0, the saturated counts, the bins of a
histogram. Here each is one read of the data, with the GIL released, so the writer thread
runs meanwhile. Built as an optional extension: without a C compiler the numpy code path of
host_stats.py computes the same values (tests compare the two).

Tensors are passed as addresses (torch's data_ptr()) of C-contiguous float32 data that the
caller keeps alive for the call. Accumulators are kept in LANES independent lanes so the
compiler vectorizes the loops without reassociating a single sum (no -ffast-math needed). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define HIST_BINS 64
#define BLOCK 256           /* bins computed (vectorized) then counted, per block */

typedef struct {
    float lo, hi;           /* over the non-NaN values */
    double sum, sumsq;      /* float lanes within a block, double across blocks */
    int64_t nan, nonpos, sat;
} Moments;

/* AVX2 where the CPU has it (chosen at load time), SSE2 otherwise: same values, the lanes and
   their order are fixed by the source, and no FMA is enabled, so no contraction either. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

#define STAT_BLOCK 1024     /* float lane sums stay short (128 values a lane) before joining a double */

/* sat_mode 0: no saturation count; 1: count x <= low or x >= high; 2: count x > high or x < low */
MULTIVERSION
static void moments(const float *x, int64_t n, int sat_mode, float low, float high, Moments *m)
{
    m->lo = FLT_MAX; m->hi = -FLT_MAX; m->sum = 0; m->sumsq = 0; m->nan = 0; m->nonpos = 0; m->sat = 0;
    for (int64_t start = 0; start < n; start += STAT_BLOCK) {
        const float *p = x + start;
        int len = n - start < STAT_BLOCK ? (int)(n - start) : STAT_BLOCK;
        float lo[LANES], hi[LANES], s[LANES], q[LANES];
        int32_t nn[LANES], np[LANES], st[LANES];
        for (int j = 0; j < LANES; j++) {
            lo[j] = FLT_MAX; hi[j] = -FLT_MAX; s[j] = 0; q[j] = 0; nn[j] = 0; np[j] = 0; st[j] = 0;
        }
        int i = 0;
        for (; i + LANES <= len; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                float v = p[i + j];
                lo[j] = v < lo[j] ? v : lo[j];      /* NaN never replaces: counted apart */
                hi[j] = v > hi[j] ? v : hi[j];
                s[j] += v;
                q[j] += v * v;
                nn[j] += v != v;
                np[j] += v <= 0.0f;
                if (sat_mode == 1)
                    st[j] += (v <= low) | (v >= high);
                else if (sat_mode == 2)
                    st[j] += (v > high) | (v < low);
            }
        }
        for (; i < len; i++) {                  /* the block's tail goes to lane 0 */
            float v = p[i];
            lo[0] = v < lo[0] ? v : lo[0];
            hi[0] = v > hi[0] ? v : hi[0];
            s[0] += v;
            q[0] += v * v;
            nn[0] += v != v;
            np[0] += v <= 0.0f;
            if (sat_mode == 1)
                st[0] += (v <= low) | (v >= high);
            else if (sat_mode == 2)
                st[0] += (v > high) | (v < low);
        }
        for (int j = 0; j < LANES; j++) {
            m->lo = lo[j] < m->lo ? lo[j] : m->lo;
            m->hi = hi[j] > m->hi ? hi[j] : m->hi;
            m->sum += s[j]; m->sumsq += q[j]; m->nan += nn[j]; m->nonpos += np[j]; m->sat += st[j];
        }
    }
    /* infinities compare beyond +-FLT_MAX, so lo/hi hold them; an all-NaN tensor keeps the
       start values, and callers report NaN whenever nan > 0 */
}

/* Sum of (x - mean)^2, for data whose mean is large against its spread (E[x^2] - mean^2 would
   cancel): float lanes of the centred squares within a block, double across blocks. */
MULTIVERSION
static double centred_squares(const float *x, int64_t n, double mean)
{
    double total = 0;
    float c = (float)mean;
    for (int64_t start = 0; start < n; start += STAT_BLOCK) {
        const float *p = x + start;
        int len = n - start < STAT_BLOCK ? (int)(n - start) : STAT_BLOCK;
        float q[LANES] = {0};
        int i = 0;
        for (; i + LANES <= len; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = p[i + j] - c;
                q[j] += d * d;
            }
        for (; i < len; i++) {
            float d = p[i] - c;
            q[0] += d * d;
        }
        for (int j = 0; j < LANES; j++)
            total += q[j];
    }
    return total;
}

/* The minimum and maximum of the non-NaN values, and whether a NaN was seen (the ranges of
   the histograms need nothing else). */
MULTIVERSION
static int min_max(const float *x, int64_t n, float *lo_out, float *hi_out)
{
    float lo[LANES], hi[LANES];
    int32_t nan[LANES];
    for (int j = 0; j < LANES; j++) {
        lo[j] = FLT_MAX; hi[j] = -FLT_MAX; nan[j] = 0;
    }
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float v = x[i + j];
            lo[j] = v < lo[j] ? v : lo[j];
            hi[j] = v > hi[j] ? v : hi[j];
            nan[j] |= v != v;
        }
    for (; i < n; i++) {
        float v = x[i];
        lo[0] = v < lo[0] ? v : lo[0];
        hi[0] = v > hi[0] ? v : hi[0];
        nan[0] |= v != v;
    }
    int any_nan = 0;
    *lo_out = FLT_MAX; *hi_out = -FLT_MAX;
    for (int j = 0; j < LANES; j++) {
        *lo_out = lo[j] < *lo_out ? lo[j] : *lo_out;
        *hi_out = hi[j] > *hi_out ? hi[j] : *hi_out;
        any_nan |= nan[j];
    }
    return any_nan;
}

/* Units (index u of an (outer, units, inner) view) whose elements are all <= 0; NaN is not. */
MULTIVERSION
static int64_t dead_units(const float *x, int64_t outer, int64_t units, int64_t inner)
{
    unsigned char *alive = calloc((size_t)units, 1);
    if (!alive)
        return -1;
    if (inner == 1) {
        for (int64_t o = 0; o < outer; o++) {
            const float *row = x + o * units;
            for (int64_t u = 0; u < units; u++)
                alive[u] |= !(row[u] <= 0.0f);
        }
    } else {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t u = 0; u < units; u++) {
                if (alive[u])
                    continue;
                const float *blk = x + (o * units + u) * inner;
                for (int64_t k = 0; k < inner; k++)
                    if (!(blk[k] <= 0.0f)) {
                        alive[u] = 1;
                        break;
                    }
            }
    }
    int64_t dead = 0;
    for (int64_t u = 0; u < units; u++)
        dead += !alive[u];
    free(alive);
    return dead;
}

/* Sum of squared deviations from the mean: E[x^2] - mean^2 from the one pass while the mean
   is small against the root mean square (then it loses at most ~10x the sums' relative error),
   a centred second pass otherwise; NaN with a NaN or infinite sum. */
static double squared_deviations(const float *x, int64_t n, const Moments *m)
{
    if (m->nan || !isfinite(m->sum))
        return NAN;
    double direct = m->sumsq - m->sum * m->sum / (double)n;
    if (isfinite(m->sumsq) && m->sum * m->sum / (double)n <= 0.9 * m->sumsq)
        return direct > 0 ? direct : 0;
    return centred_squares(x, n, m->sum / (double)n);
}

/* stats(addr, n, outer, units, inner, sat_mode, low, high)
   -> (lo, hi, sum, squared deviations, nan, nonpos, sat, dead) of n float32 values; lo and hi
   are NaN when a value is. dead: units (of the (outer, units, inner) view) whose elements are
   all <= 0, -1 when not asked (units == 0). */
static PyObject *py_stats(PyObject *Py_UNUSED(self), PyObject *args)
{
    unsigned long long addr;
    long long n, outer, units, inner;
    int sat_mode;
    float low, high;
    if (!PyArg_ParseTuple(args, "KLLLLiff", &addr, &n, &outer, &units, &inner, &sat_mode, &low, &high))
        return NULL;
    if (n <= 0 || units < 0 || (units > 0 && outer * units * inner != n)) {
        PyErr_SetString(PyExc_ValueError, "stats: the shape does not match the element count");
        return NULL;
    }
    const float *x = (const float *)(uintptr_t)addr;
    Moments m;
    double m2;
    int64_t dead = -1;
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    moments(x, n, sat_mode, low, high, &m);
    m2 = squared_deviations(x, n, &m);
    if (units > 0) {
        if (m.nonpos == 0)
            dead = 0;
        else if (m.nonpos == n)
            dead = units;
        else {
            dead = dead_units(x, outer, units, inner);
            oom = dead < 0;
        }
    }
    Py_END_ALLOW_THREADS
    if (oom)
        return PyErr_NoMemory();
    double lo = m.nan ? NAN : m.lo, hi = m.nan ? NAN : m.hi;
    return Py_BuildValue("(ddddLLLL)", lo, hi, m.sum, m2, (long long)m.nan, (long long)m.nonpos,
                         (long long)m.sat, (long long)dead);
}

/* 64 bins of x over [lo, lo + 64 * step]: floor((x - lo) / step) in float32, as numpy's
   divide-then-truncate of host_stats; the maximum's bin 64 joins bin 63. Four sub-histograms
   so consecutive equal bins do not wait on each other's increment. */
MULTIVERSION
static void bin_values(const float *x, int64_t n, float lo, float step, int64_t *counts)
{
    int32_t sub[4][HIST_BINS];
    int32_t idx[BLOCK];
    memset(sub, 0, sizeof sub);
    for (int64_t i = 0; i < n; i += BLOCK) {
        int64_t len = n - i < BLOCK ? n - i : BLOCK;
        const float *p = x + i;
        for (int64_t k = 0; k < len; k++) {
            int32_t b = (int32_t)((p[k] - lo) / step);
            idx[k] = b < HIST_BINS - 1 ? b : HIST_BINS - 1;
        }
        int64_t k = 0;
        for (; k + 4 <= len; k += 4) {
            sub[0][idx[k]]++; sub[1][idx[k + 1]]++; sub[2][idx[k + 2]]++; sub[3][idx[k + 3]]++;
        }
        for (; k < len; k++)
            sub[0][idx[k]]++;
        if ((i / BLOCK) % (1 << 20) == (1 << 20) - 1)   /* int32 sub-counts: flush before 2**31 */
            for (int b = 0; b < HIST_BINS; b++) {
                counts[b] += (int64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
                sub[0][b] = sub[1][b] = sub[2][b] = sub[3][b] = 0;
            }
    }
    for (int b = 0; b < HIST_BINS; b++)
        counts[b] += (int64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
}

static int sized(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t items, const char *what)
{
    if (b->len != itemsize * items) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", what, b->len, itemsize * items);
        return 0;
    }
    return 1;
}

/* histograms(addrs int64[k], sizes int64[k], counts int64[k, 64] (zeroed), ranges float64[k, 2],
   binned uint8[k]): the range of each tensor, and its bins when the range is finite and at
   least 64 x the smallest normal float (binned[i] = 1); the others (NaN/Inf values, constants,
   tiny ranges) are left to the caller (binned[i] = 0). */
static PyObject *py_histograms(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer addrs, sizes, counts, ranges, binned;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*", &addrs, &sizes, &counts, &ranges, &binned))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t k = addrs.len / 8;
    if (sized(&addrs, 8, k, "addrs") && sized(&sizes, 8, k, "sizes") &&
        sized(&counts, 8, k * HIST_BINS, "counts") && sized(&ranges, 8, k * 2, "ranges") &&
        sized(&binned, 1, k, "binned")) {
        const int64_t *a = addrs.buf, *s = sizes.buf;
        int64_t *c = counts.buf;
        double *r = ranges.buf;
        unsigned char *ok = binned.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t t = 0; t < k; t++) {
            const float *x = (const float *)(uintptr_t)a[t];
            float lo, hi;
            ok[t] = 0;
            if (s[t] <= 0)
                continue;
            int nan = min_max(x, s[t], &lo, &hi);
            r[2 * t] = nan ? NAN : lo;      /* a NaN anywhere: a NaN range, as numpy's minimum */
            r[2 * t + 1] = nan ? NAN : hi;
            float span = hi - lo;
            if (nan || !(span <= FLT_MAX) || !(span >= 64 * FLT_MIN))
                continue;
            bin_values(x, s[t], lo, span / (float)HIST_BINS, c + t * HIST_BINS);
            ok[t] = 1;
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&addrs); PyBuffer_Release(&sizes); PyBuffer_Release(&counts);
    PyBuffer_Release(&ranges); PyBuffer_Release(&binned);
    return result;
}

#define SNAP 32             /* format.SNAP_SIZE */

/* The adaptive average pooling of an r x c matrix to min(r, 32) x min(c, 32), as torch's
   adaptive_avg_pool2d (output cell i spans input rows floor(i r / rows) to ceil((i + 1) r / rows)),
   written into a 32 x 32 block whose other cells keep their NaN. The rows of a block are added
   in float64 (a vectorized pass over the matrix), then each row block's columns. */
MULTIVERSION
static int pool(const float *w, int64_t r, int64_t c, float *out)
{
    int64_t rows = r < SNAP ? r : SNAP, cols = c < SNAP ? c : SNAP;
    double *acc = malloc((size_t)c * sizeof(double));
    if (!acc)
        return 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t a0 = i * r / rows, a1 = ((i + 1) * r + rows - 1) / rows;
        for (int64_t k = 0; k < c; k++)
            acc[k] = 0;
        for (int64_t a = a0; a < a1; a++) {
            const float *row = w + a * c;
            for (int64_t k = 0; k < c; k++)
                acc[k] += row[k];
        }
        for (int64_t j = 0; j < cols; j++) {
            int64_t b0 = j * c / cols, b1 = ((j + 1) * c + cols - 1) / cols;
            double sum = 0;
            for (int64_t k = b0; k < b1; k++)
                sum += acc[k];
            out[i * SNAP + j] = (float)(sum / (double)((a1 - a0) * (b1 - b0)));
        }
    }
    free(acc);
    return 1;
}

/* snapshots(addrs int64[k], shapes int64[k, 2], out float32[k, 32, 32] filled with NaN):
   the pooled 32 x 32 snapshot of each C-contiguous float32 r x c matrix. */
static PyObject *py_snapshots(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer addrs, shapes, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &addrs, &shapes, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t k = addrs.len / 8;
    if (sized(&addrs, 8, k, "addrs") && sized(&shapes, 8, k * 2, "shapes") &&
        sized(&out, 4, k * SNAP * SNAP, "out")) {
        const int64_t *a = addrs.buf, *shape = shapes.buf;
        float *o = out.buf;
        int ok = 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t t = 0; t < k && ok; t++)
            if (shape[2 * t] > 0 && shape[2 * t + 1] > 0)
                ok = pool((const float *)(uintptr_t)a[t], shape[2 * t], shape[2 * t + 1], o + t * SNAP * SNAP);
        Py_END_ALLOW_THREADS
        result = ok ? Py_NewRef(Py_None) : PyErr_NoMemory();
    }
    PyBuffer_Release(&addrs); PyBuffer_Release(&shapes); PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"stats", py_stats, METH_VARARGS, "One-pass moments, counts and dead units of float32 data."},
    {"histograms", py_histograms, METH_VARARGS, "Ranges and 64-bin histograms of float32 tensors."},
    {"snapshots", py_snapshots, METH_VARARGS, "32 x 32 adaptive average pooling of float32 matrices."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
