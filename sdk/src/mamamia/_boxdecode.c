/* mamamia._boxdecode: decode the blosc chunks a box touches and copy their parts into the
 * output, in one call without the GIL (see mamamia/_boxread.py, which builds the jobs).
 *
 * A random 64^3 crop of a format-2 phase touches some twenty inner chunks; in Python each one
 * costs a few microseconds of bookkeeping on top of its decode, as much as the decode itself.
 * This loop does the same work per chunk as mamamia._chunks does: check the blosc header
 * against the chunk's size and shape, decode only the planes the box needs (blosc_getitem) or
 * the whole chunk (blosc_decompress_ctx), copy the overlap. The blosc entry points are the
 * ones numcodecs' extension exports, passed in as addresses (bound and probe-checked by
 * mamamia._blosc_items), so this module links nothing. Any refusal returns the failing job's
 * number; the caller then reads the box the Python way, which raises the precise error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*getitem_fn)(const void *src, int start, int nitems, void *dest);
typedef int (*decompress_fn)(const void *src, void *dest, size_t destsize, int nthreads);

/* One job: a row of int64 in this order (mamamia/_boxread.py's JOB_FIELDS). */
enum { SRC, SIZE, Z0, Z1, Y0, Y1, X0, X1, OUT, FIELDS };

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Returns the number of jobs done, or -(i + 1) when job i is refused. */
static int64_t run_jobs(getitem_fn getitem, decompress_fn decompress, const int64_t *jobs,
                        int64_t count, int64_t cz, int64_t cy, int64_t cx, int64_t itemsize,
                        int64_t trailer, char *out, int64_t zstride, int64_t ystride,
                        char *scratch) {
    const int64_t row_items = cx;
    const int64_t plane_items = cy * cx;
    const int64_t chunk_bytes = cz * plane_items * itemsize;
    for (int64_t i = 0; i < count; i++) {
        const int64_t *job = jobs + FIELDS * i;
        if (job[SRC] == 0)
            continue; /* never written: the caller filled the output with the fill value */
        const unsigned char *src = (const unsigned char *)(intptr_t)job[SRC];
        const int64_t size = job[SIZE];
        const int64_t z0 = job[Z0], z1 = job[Z1], y0 = job[Y0], y1 = job[Y1];
        const int64_t x0 = job[X0], x1 = job[X1];
        if (size < trailer + 16 || z0 < 0 || z1 > cz || z0 >= z1 || y0 < 0 || y1 > cy ||
            y0 >= y1 || x0 < 0 || x1 > cx || x0 >= x1)
            return -(i + 1);
        /* blosc's header: nbytes at 4, cbytes at 12 (little-endian uint32). */
        if ((int64_t)le32(src + 4) != chunk_bytes || (int64_t)le32(src + 12) != size - trailer)
            return -(i + 1);
        const int64_t planes = z1 - z0;
        const int64_t want = planes * plane_items * itemsize;
        char *target = out + job[OUT];
        /* Whole planes into a plane-contiguous output: decode in place, no copy. */
        const int direct = y0 == 0 && y1 == cy && x0 == 0 && x1 == cx &&
                           ystride == cx * itemsize && zstride == cy * cx * itemsize;
        char *dest = direct ? target : scratch;
        int got;
        if (planes == cz)
            got = decompress(src, dest, (size_t)chunk_bytes, 1);
        else
            got = getitem(src, (int)(z0 * plane_items), (int)(planes * plane_items), dest);
        if ((int64_t)got != want)
            return -(i + 1);
        if (direct)
            continue;
        const int64_t run = (x1 - x0) * itemsize;
        for (int64_t p = 0; p < planes; p++) {
            char *o = target + p * zstride;
            const char *s = scratch + ((p * cy + y0) * row_items + x0) * itemsize;
            for (int64_t r = y0; r < y1; r++) {
                memcpy(o, s, (size_t)run);
                o += ystride;
                s += row_items * itemsize;
            }
        }
    }
    return count;
}

PyDoc_STRVAR(decode_boxes_doc,
             "decode_boxes(getitem, decompress, jobs, cz, cy, cx, itemsize, trailer, out, "
             "zstride, ystride) -> int\n\n"
             "Run the jobs (an int64 buffer of rows SRC, SIZE, Z0, Z1, Y0, Y1, X0, X1, OUT) "
             "without the GIL; the number done, or -(i + 1) when job i is refused.");

static PyObject *decode_boxes(PyObject *self, PyObject *args) {
    unsigned long long getitem, decompress, out;
    Py_buffer jobs;
    long long cz, cy, cx, itemsize, trailer, zstride, ystride;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKy*LLLLLKLL", &getitem, &decompress, &jobs, &cz, &cy, &cx,
                          &itemsize, &trailer, &out, &zstride, &ystride))
        return NULL;
    if (jobs.len % (Py_ssize_t)(FIELDS * sizeof(int64_t)) != 0 || cz < 1 || cy < 1 || cx < 1 ||
        itemsize < 1 || getitem == 0 || decompress == 0 || out == 0 ||
        cz * cy * cx * itemsize > INT32_MAX) {
        PyBuffer_Release(&jobs);
        PyErr_SetString(PyExc_ValueError, "decode_boxes: bad arguments");
        return NULL;
    }
    const int64_t count = (int64_t)(jobs.len / (Py_ssize_t)(FIELDS * sizeof(int64_t)));
    char *scratch = malloc((size_t)(cz * cy * cx * itemsize));
    if (scratch == NULL) {
        PyBuffer_Release(&jobs);
        return PyErr_NoMemory();
    }
    int64_t done;
    Py_BEGIN_ALLOW_THREADS
    done = run_jobs((getitem_fn)(uintptr_t)getitem, (decompress_fn)(uintptr_t)decompress,
                    (const int64_t *)jobs.buf, count, cz, cy, cx, itemsize, trailer,
                    (char *)(uintptr_t)out, zstride, ystride, scratch);
    Py_END_ALLOW_THREADS
    free(scratch);
    PyBuffer_Release(&jobs);
    return PyLong_FromLongLong(done);
}

static PyMethodDef methods[] = {
    {"decode_boxes", decode_boxes, METH_VARARGS, decode_boxes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mamamia._boxdecode",
    "Decode the blosc chunks a box touches into the output in one call (see the C source).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__boxdecode(void) { return PyModule_Create(&module); }
