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

/* CRC-32C (Castagnoli, reflected, as crc32c and zarr compute it): the SSE4.2 instruction where
 * the CPU has it, else a table. Only a chunk's first read from a memory map is checked. */
static uint32_t crc_table[256];

static void crc_table_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32c_table(uint32_t crc, const unsigned char *p, size_t n) {
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc,
                                                                const unsigned char *p,
                                                                size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
static int has_sse42;
#define CRC_DETECT() (has_sse42 = __builtin_cpu_supports("sse4.2"))
#define CRC_UPDATE(crc, p, n) (has_sse42 ? crc32c_sse42(crc, p, n) : crc32c_table(crc, p, n))
#else
#define CRC_DETECT() ((void)0)
#define CRC_UPDATE(crc, p, n) crc32c_table(crc, p, n)
#endif

/* The CRC-32C of a message followed by its own CRC (little-endian) is this residue. */
#define CRC32C_RESIDUE 0x48674BC7u

static uint32_t crc32c(const unsigned char *p, size_t n) {
    return CRC_UPDATE(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu;
}

/* What every read shares: the blosc entry points, the chunk's shape, the output's layout. */
typedef struct {
    getitem_fn getitem;
    decompress_fn decompress;
    int64_t cz, cy, cx, itemsize, trailer, zstride, ystride;
    char *out;
    char *scratch;
} Reader;

/* Decode planes [z0, z1) of one compressed chunk and copy rows [y0, y1), columns [x0, x1) to
 * ``target``; 0, or -1 when the header or the decoder refuses it. */
static int decode_one(const Reader *r, const unsigned char *src, int64_t size, int64_t z0,
                      int64_t z1, int64_t y0, int64_t y1, int64_t x0, int64_t x1, char *target) {
    const int64_t plane_items = r->cy * r->cx;
    const int64_t chunk_bytes = r->cz * plane_items * r->itemsize;
    if (size < r->trailer + 16 || z0 < 0 || z1 > r->cz || z0 >= z1 || y0 < 0 || y1 > r->cy ||
        y0 >= y1 || x0 < 0 || x1 > r->cx || x0 >= x1)
        return -1;
    /* blosc's header: nbytes at 4, cbytes at 12 (little-endian uint32). */
    if ((int64_t)le32(src + 4) != chunk_bytes || (int64_t)le32(src + 12) != size - r->trailer)
        return -1;
    const int64_t planes = z1 - z0;
    const int64_t want = planes * plane_items * r->itemsize;
    /* Whole planes into a plane-contiguous output: decode in place, no copy. */
    const int direct = y0 == 0 && y1 == r->cy && x0 == 0 && x1 == r->cx &&
                       r->ystride == r->cx * r->itemsize &&
                       r->zstride == r->cy * r->cx * r->itemsize;
    char *dest = direct ? target : r->scratch;
    int got;
    if (planes == r->cz)
        got = r->decompress(src, dest, (size_t)chunk_bytes, 1);
    else
        got = r->getitem(src, (int)(z0 * plane_items), (int)(planes * plane_items), dest);
    if ((int64_t)got != want)
        return -1;
    if (direct)
        return 0;
    const int64_t run = (x1 - x0) * r->itemsize;
    const int64_t row_bytes = r->cx * r->itemsize;
    for (int64_t p = 0; p < planes; p++) {
        char *o = target + p * r->zstride;
        const char *s = r->scratch + ((p * r->cy + y0) * r->cx + x0) * r->itemsize;
        for (int64_t row = y0; row < y1; row++) {
            memcpy(o, s, (size_t)run);
            o += r->ystride;
            s += row_bytes;
        }
    }
    return 0;
}

/* Fill a chunk's part of the output with the fill value (an inner chunk never written). */
static void fill_one(const Reader *r, const char *fill, int64_t planes, int64_t rows,
                     int64_t cols, char *target) {
    for (int64_t p = 0; p < planes; p++)
        for (int64_t row = 0; row < rows; row++) {
            char *o = target + p * r->zstride + row * r->ystride;
            for (int64_t c = 0; c < cols; c++)
                memcpy(o + c * r->itemsize, fill, (size_t)r->itemsize);
        }
}

/* Returns the number of jobs done, or -(i + 1) when job i is refused. */
static int64_t run_jobs(const Reader *r, const int64_t *jobs, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const int64_t *job = jobs + FIELDS * i;
        if (job[SRC] == 0)
            continue; /* never written: the caller filled the output with the fill value */
        if (decode_one(r, (const unsigned char *)(intptr_t)job[SRC], job[SIZE], job[Z0], job[Z1],
                       job[Y0], job[Y1], job[X0], job[X1], r->out + job[OUT]) != 0)
            return -(i + 1);
    }
    return count;
}

/* One axis of a box within one shard: per chunk touched, its slot in the shard's index (times
 * the axis' stride), its first and end index inside the chunk, its byte offset in the output. */
typedef struct {
    int64_t n;
    int64_t *slot, *first, *end, *offset;
} Axis;

#define MAX_AXES 8

/* Every chunk of the box's grid in C order: looked up in the shard's index, checked (its
 * crc32c, the first time in this map), decoded or filled. The number done, or -(i + 1). */
static int64_t run_shard(const Reader *r, const Axis *axes, int ndim, const uint64_t *index,
                         int64_t entries, const unsigned char *shard, int64_t shard_len,
                         unsigned char *checked, const char *fill) {
    int64_t at[MAX_AXES] = {0};
    int64_t done = 0;
    for (;;) {
        int64_t slot = 0, offset = 0;
        for (int a = 0; a < ndim; a++) {
            slot += axes[a].slot[at[a]];
            offset += axes[a].offset[at[a]];
        }
        const Axis *z = &axes[ndim - 3], *y = &axes[ndim - 2], *x = &axes[ndim - 1];
        const int64_t z0 = z->first[at[ndim - 3]], z1 = z->end[at[ndim - 3]];
        const int64_t y0 = y->first[at[ndim - 2]], y1 = y->end[at[ndim - 2]];
        const int64_t x0 = x->first[at[ndim - 1]], x1 = x->end[at[ndim - 1]];
        if (slot < 0 || slot >= entries)
            return -(done + 1);
        const uint64_t where = index[2 * slot], nbytes = index[2 * slot + 1];
        if (where == UINT64_MAX && nbytes == UINT64_MAX) {
            fill_one(r, fill, z1 - z0, y1 - y0, x1 - x0, r->out + offset);
        } else {
            if (where == UINT64_MAX || nbytes == 0 || nbytes == UINT64_MAX ||
                where > (uint64_t)shard_len || nbytes > (uint64_t)shard_len - where)
                return -(done + 1);
            const unsigned char *src = shard + where;
            if (r->trailer && (checked == NULL || !checked[slot])) {
                if (crc32c(src, (size_t)nbytes) != CRC32C_RESIDUE)
                    return -(done + 1);
                if (checked != NULL)
                    checked[slot] = 1;
            }
            if (decode_one(r, src, (int64_t)nbytes, z0, z1, y0, y1, x0, x1, r->out + offset) != 0)
                return -(done + 1);
        }
        done++;
        int a = ndim - 1; /* the odometer: the last axis turns fastest */
        while (a >= 0 && ++at[a] == axes[a].n)
            at[a--] = 0;
        if (a < 0)
            return done;
    }
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
    Reader r = {(getitem_fn)(uintptr_t)getitem, (decompress_fn)(uintptr_t)decompress,
                cz, cy, cx, itemsize, trailer, zstride, ystride, (char *)(uintptr_t)out, scratch};
    int64_t done;
    Py_BEGIN_ALLOW_THREADS
    done = run_jobs(&r, (const int64_t *)jobs.buf, count);
    Py_END_ALLOW_THREADS
    free(scratch);
    PyBuffer_Release(&jobs);
    return PyLong_FromLongLong(done);
}

PyDoc_STRVAR(read_shard_doc,
             "read_shard(getitem, decompress, index, shard, checked, axes, cz, cy, cx, "
             "itemsize, trailer, fill, out, zstride, ystride) -> int\n\n"
             "Read a box's chunks of one memory-mapped shard: ``index`` its (offset, nbytes) "
             "uint64 table, ``shard`` its bytes, ``checked`` a bytearray of the slots whose "
             "crc32c passed in this map (or None), ``axes`` per axis the four int lists slot "
             "* stride, first, end and output byte offset, ``fill`` the fill value's bytes. "
             "Runs without the GIL; the number of chunks done, or -(i + 1) when chunk i is "
             "refused.");

/* ``values`` (a sequence of ints) into ``into``; -1 with an exception on anything else. */
static int64_t ints_of(PyObject *values, int64_t *into, int64_t room) {
    PyObject *fast = PySequence_Fast(values, "read_shard: an axis part must be a sequence");
    if (fast == NULL)
        return -1;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > room) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "read_shard: too many chunks along an axis");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        into[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (into[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return n;
}

#define MAX_PER_AXIS 4096

static PyObject *read_shard(PyObject *self, PyObject *args) {
    unsigned long long getitem, decompress, out;
    Py_buffer index, shard, fill, checked = {0};
    PyObject *checked_obj, *axes_obj;
    long long cz, cy, cx, itemsize, trailer, zstride, ystride;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKy*y*OOLLLLLy*KLL", &getitem, &decompress, &index, &shard,
                          &checked_obj, &axes_obj, &cz, &cy, &cx, &itemsize, &trailer, &fill,
                          &out, &zstride, &ystride))
        return NULL;
    PyObject *result = NULL, *axes_fast = NULL;
    int64_t *values = NULL;
    char *scratch = NULL;
    int have_checked = 0;
    Axis axes[MAX_AXES];
    if (checked_obj != Py_None) {
        if (PyObject_GetBuffer(checked_obj, &checked, PyBUF_WRITABLE) != 0)
            goto done;
        have_checked = 1;
    }
    const int64_t entries = (int64_t)(index.len / 16);
    if (cz < 1 || cy < 1 || cx < 1 || itemsize < 1 || fill.len != itemsize || getitem == 0 ||
        decompress == 0 || out == 0 || cz * cy * cx * itemsize > INT32_MAX ||
        (have_checked && checked.len < entries)) {
        PyErr_SetString(PyExc_ValueError, "read_shard: bad arguments");
        goto done;
    }
    axes_fast = PySequence_Fast(axes_obj, "read_shard: axes must be a sequence");
    if (axes_fast == NULL)
        goto done;
    const Py_ssize_t ndim = PySequence_Fast_GET_SIZE(axes_fast);
    if (ndim < 3 || ndim > MAX_AXES) {
        PyErr_SetString(PyExc_ValueError, "read_shard: 3 to 8 axes");
        goto done;
    }
    /* Room for every axis' four lists, sized by each axis' first list. */
    Py_ssize_t total = 0;
    for (Py_ssize_t a = 0; a < ndim; a++) {
        PyObject *axis = PySequence_Fast_GET_ITEM(axes_fast, a);
        PyObject *first = PySequence_Check(axis) ? PySequence_GetItem(axis, 0) : NULL;
        const Py_ssize_t n = first != NULL ? PySequence_Size(first) : -1;
        Py_XDECREF(first);
        if (n < 1 || n > MAX_PER_AXIS) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "read_shard: each axis needs four equal lists");
            goto done;
        }
        total += n;
    }
    values = malloc(sizeof(int64_t) * 4 * (size_t)total);
    scratch = malloc((size_t)(cz * cy * cx * itemsize));
    if (values == NULL || scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *next = values;
    for (Py_ssize_t a = 0; a < ndim; a++) {
        PyObject *axis = PySequence_Fast(PySequence_Fast_GET_ITEM(axes_fast, a),
                                         "read_shard: an axis must be a sequence");
        if (axis == NULL)
            goto done;
        int64_t n[4] = {-1, -1, -1, -1};
        int64_t *base[4] = {NULL, NULL, NULL, NULL};
        const Py_ssize_t room = values + 4 * total - next;
        if (PySequence_Fast_GET_SIZE(axis) == 4)
            for (int k = 0; k < 4; k++) {
                base[k] = next + (k ? n[0] * k : 0);
                n[k] = ints_of(PySequence_Fast_GET_ITEM(axis, k), base[k],
                               room - (base[k] - next));
                if (n[k] < 0 || n[k] != n[0])
                    break;
            }
        Py_DECREF(axis);
        if (PyErr_Occurred())
            goto done;
        if (n[0] < 1 || n[1] != n[0] || n[2] != n[0] || n[3] != n[0]) {
            PyErr_SetString(PyExc_ValueError, "read_shard: each axis needs four equal lists");
            goto done;
        }
        axes[a] = (Axis){n[0], base[0], base[1], base[2], base[3]};
        next += 4 * n[0];
    }
    Reader r = {(getitem_fn)(uintptr_t)getitem, (decompress_fn)(uintptr_t)decompress,
                cz, cy, cx, itemsize, trailer, zstride, ystride, (char *)(uintptr_t)out, scratch};
    int64_t count;
    Py_BEGIN_ALLOW_THREADS
    count = run_shard(&r, axes, (int)ndim, (const uint64_t *)index.buf, entries,
                      (const unsigned char *)shard.buf, (int64_t)shard.len,
                      have_checked ? (unsigned char *)checked.buf : NULL, (const char *)fill.buf);
    Py_END_ALLOW_THREADS
    result = PyLong_FromLongLong(count);
done:
    free(values);
    free(scratch);
    Py_XDECREF(axes_fast);
    if (have_checked)
        PyBuffer_Release(&checked);
    PyBuffer_Release(&index);
    PyBuffer_Release(&shard);
    PyBuffer_Release(&fill);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_boxes", decode_boxes, METH_VARARGS, decode_boxes_doc},
    {"read_shard", read_shard, METH_VARARGS, read_shard_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mamamia._boxdecode",
    "Decode the blosc chunks a box touches into the output in one call (see the C source).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__boxdecode(void) {
    crc_table_init();
    CRC_DETECT();
    return PyModule_Create(&module);
}
