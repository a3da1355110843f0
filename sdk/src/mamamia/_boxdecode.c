/* mamamia._boxdecode: decode the blosc chunks a box touches and copy their parts into the
 * output, in one call without the GIL (see mamamia/_boxread.py, its caller).
 *
 * A random 64^3 crop of a format-2 phase touches about 27 inner chunks; in Python each one
 * costs a few microseconds of bookkeeping on top of its decode, as much as the decode itself.
 * This loop does the same work per chunk as mamamia._chunks does: check the chunk's crc32c and
 * its blosc header against its size and shape, decode only the planes the box needs
 * (blosc_getitem) or the whole chunk (blosc_decompress_ctx), copy the overlap, fill a chunk
 * never written. The blosc entry points are the ones numcodecs' extension exports, passed in
 * as addresses (bound and probe-checked by mamamia._blosc_items), so this module links
 * nothing. Any refusal returns the failing chunk's number; the caller then reads the box the
 * Python way, which raises the precise error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*getitem_fn)(const void *src, int start, int nitems, void *dest);
typedef int (*decompress_fn)(const void *src, void *dest, size_t destsize, int nthreads);

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

/* One axis of a box within one shard: per chunk touched, its slot in the shard's index (times
 * the axis' stride), its first and end index inside the chunk, its byte offset in the output. */
typedef struct {
    int64_t n;
    int64_t *slot, *first, *end, *offset;
} Axis;

#define MAX_AXES 8
#define MAX_PER_AXIS 4096

/* Where the chunks' compressed bytes are: a memory-mapped shard and its index (``chunks`` NULL),
 * or one buffer per chunk of the grid in C order (NULL: never written). */
typedef struct {
    const uint64_t *index;
    int64_t entries;
    const unsigned char *shard;
    int64_t shard_len;
    unsigned char *checked; /* per index slot, 1 once its crc32c passed in this map; or NULL */
    const unsigned char **chunks;
    const int64_t *sizes;
    unsigned char **flags; /* per chunk, its map's checked bytes (indexed by slot), or NULL */
} Source;

/* Every chunk of the box's grid in C order: found, checked, decoded or filled. The number
 * done, or -(i + 1) when chunk i is refused. */
static int64_t run_grid(const Reader *r, const Axis *axes, int ndim, const Source *src,
                        const char *fill) {
    int64_t at[MAX_AXES] = {0};
    int64_t done = 0;
    const Axis *z = &axes[ndim - 3], *y = &axes[ndim - 2], *x = &axes[ndim - 1];
    for (;;) {
        int64_t slot = 0, offset = 0;
        for (int a = 0; a < ndim; a++) {
            slot += axes[a].slot[at[a]];
            offset += axes[a].offset[at[a]];
        }
        const int64_t z0 = z->first[at[ndim - 3]], z1 = z->end[at[ndim - 3]];
        const int64_t y0 = y->first[at[ndim - 2]], y1 = y->end[at[ndim - 2]];
        const int64_t x0 = x->first[at[ndim - 1]], x1 = x->end[at[ndim - 1]];
        const unsigned char *bytes = NULL;
        uint64_t nbytes = 0;
        int check = r->trailer != 0;
        unsigned char *flags = src->checked;
        if (src->chunks != NULL) {
            bytes = src->chunks[done];
            nbytes = (uint64_t)src->sizes[done];
            flags = src->flags[done];
            check = check && (flags == NULL || !flags[slot]);
        } else {
            if (slot < 0 || slot >= src->entries)
                return -(done + 1);
            const uint64_t where = src->index[2 * slot];
            nbytes = src->index[2 * slot + 1];
            if (!(where == UINT64_MAX && nbytes == UINT64_MAX)) {
                if (where == UINT64_MAX || nbytes == 0 || nbytes == UINT64_MAX ||
                    where > (uint64_t)src->shard_len ||
                    nbytes > (uint64_t)src->shard_len - where)
                    return -(done + 1);
                bytes = src->shard + where;
                check = check && (flags == NULL || !flags[slot]);
            }
        }
        if (bytes == NULL) {
            fill_one(r, fill, z1 - z0, y1 - y0, x1 - x0, r->out + offset);
        } else {
            if (check && (nbytes < 4 || crc32c(bytes, (size_t)nbytes) != CRC32C_RESIDUE))
                return -(done + 1);
            if (check && flags != NULL)
                flags[slot] = 1;
            if (decode_one(r, bytes, (int64_t)nbytes, z0, z1, y0, y1, x0, x1, r->out + offset) !=
                0)
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

/* ``run_grid`` without the GIL (the caller holds every buffer it reads); its count as an int. */
static PyObject *run_released(const Reader *r, const Axis *axes, int ndim, const Source *src,
                              const char *fill) {
    int64_t count;
    Py_BEGIN_ALLOW_THREADS
    count = run_grid(r, axes, ndim, src, fill);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(count);
}

/* ``values`` (a sequence of ints) into ``into``; -1 with an exception on anything else. */
static int64_t ints_of(PyObject *values, int64_t *into, int64_t room) {
    PyObject *fast = PySequence_Fast(values, "an axis part must be a sequence");
    if (fast == NULL)
        return -1;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > room) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many chunks along an axis");
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

/* The axes argument (per axis four equal int lists) into ``axes``, their values in one block
 * the caller frees; the grid's chunk count, or -1 with an exception. */
static int64_t axes_of(PyObject *axes_obj, Axis *axes, int *ndim, int64_t **values) {
    PyObject *fast = PySequence_Fast(axes_obj, "axes must be a sequence");
    if (fast == NULL)
        return -1;
    int64_t cells = -1;
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    Py_ssize_t total = 0;
    if (count < 3 || count > MAX_AXES) {
        PyErr_SetString(PyExc_ValueError, "3 to 8 axes");
        goto done;
    }
    for (Py_ssize_t a = 0; a < count; a++) { /* room for the lists, sized by the first */
        PyObject *axis = PySequence_Fast_GET_ITEM(fast, a);
        PyObject *first = PySequence_Check(axis) ? PySequence_GetItem(axis, 0) : NULL;
        const Py_ssize_t n = first != NULL ? PySequence_Size(first) : -1;
        Py_XDECREF(first);
        if (n < 1 || n > MAX_PER_AXIS) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "each axis needs four equal lists");
            goto done;
        }
        total += n;
    }
    *values = malloc(sizeof(int64_t) * 4 * (size_t)total);
    if (*values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *next = *values;
    cells = 1;
    for (Py_ssize_t a = 0; a < count; a++) {
        PyObject *axis = PySequence_Fast(PySequence_Fast_GET_ITEM(fast, a),
                                         "an axis must be a sequence");
        if (axis == NULL) {
            cells = -1;
            goto done;
        }
        int64_t n[4] = {-1, -1, -1, -1};
        int64_t *base[4] = {NULL, NULL, NULL, NULL};
        const int64_t room = *values + 4 * total - next;
        if (PySequence_Fast_GET_SIZE(axis) == 4)
            for (int k = 0; k < 4; k++) {
                base[k] = next + (k ? n[0] * k : 0);
                n[k] = ints_of(PySequence_Fast_GET_ITEM(axis, k), base[k], room - (base[k] - next));
                if (n[k] < 0 || n[k] != n[0])
                    break;
            }
        Py_DECREF(axis);
        if (PyErr_Occurred()) {
            cells = -1;
            goto done;
        }
        if (n[0] < 1 || n[1] != n[0] || n[2] != n[0] || n[3] != n[0]) {
            PyErr_SetString(PyExc_ValueError, "each axis needs four equal lists");
            cells = -1;
            goto done;
        }
        axes[a] = (Axis){n[0], base[0], base[1], base[2], base[3]};
        next += 4 * n[0];
        cells *= n[0];
    }
    *ndim = (int)count;
done:
    Py_DECREF(fast);
    return cells;
}

/* Shared argument order: getitem, decompress, cz, cy, cx, itemsize, trailer, fill, out,
 * zstride, ystride, then the entry point's own. */
#define COMMON 11

/* The arguments both entry points share after their source: the chunk shape, item size, crc32c
 * trailer, fill value, output. A ready Reader (its scratch to free), or -1 with an exception. */
static int reader_of(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t own, const char *name,
                     Reader *r, Py_buffer *fill) {
    if (nargs != COMMON + own) {
        PyErr_Format(PyExc_TypeError, "%s takes %d arguments", name, (int)(COMMON + own));
        return -1;
    }
    long long v[9];
    for (int i = 0; i < 5; i++) {
        v[i] = PyLong_AsLongLong(args[2 + i]);
        if (v[i] == -1 && PyErr_Occurred())
            return -1;
    }
    for (int i = 0; i < 3; i++) {
        v[5 + i] = PyLong_AsLongLong(args[8 + i]);
        if (v[5 + i] == -1 && PyErr_Occurred())
            return -1;
    }
    const unsigned long long getitem = PyLong_AsUnsignedLongLong(args[0]);
    const unsigned long long decompress = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred())
        return -1;
    if (PyObject_GetBuffer(args[7], fill, PyBUF_SIMPLE) != 0)
        return -1;
    const long long cz = v[0], cy = v[1], cx = v[2], itemsize = v[3], trailer = v[4];
    if (cz < 1 || cy < 1 || cx < 1 || itemsize < 1 || cz * cy * cx * itemsize > INT32_MAX ||
        (trailer != 0 && trailer != 4) || fill->len != itemsize || getitem == 0 ||
        decompress == 0 || v[5] == 0) {
        PyBuffer_Release(fill);
        PyErr_SetString(PyExc_ValueError, "bad chunk shape, item size, fill or address");
        return -1;
    }
    char *scratch = malloc((size_t)(cz * cy * cx * itemsize));
    if (scratch == NULL) {
        PyBuffer_Release(fill);
        PyErr_NoMemory();
        return -1;
    }
    *r = (Reader){(getitem_fn)(uintptr_t)getitem, (decompress_fn)(uintptr_t)decompress,
                  cz, cy, cx, itemsize, trailer, v[6], v[7], (char *)(uintptr_t)v[5], scratch};
    return 0;
}


PyDoc_STRVAR(read_shard_doc,
             "read_shard(getitem, decompress, cz, cy, cx, itemsize, trailer, fill, out, "
             "zstride, ystride, axes, index, shard, checked) -> int\n\n"
             "Read a box's chunks of one memory-mapped shard into the output at address "
             "``out``: ``axes`` per axis the four int lists slot * stride, first, end and "
             "output byte offset; ``index`` the shard's (offset, nbytes) uint64 table, "
             "``shard`` its bytes, ``checked`` a bytearray of the slots whose crc32c passed "
             "in this map (or None), ``fill`` the fill value's bytes. Runs without the GIL; "
             "the number of chunks done, or -(i + 1) when chunk i is refused.");

static PyObject *read_shard(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Reader r;
    Py_buffer fill, index = {0}, shard = {0}, checked = {0};
    if (reader_of(args, nargs, 4, "read_shard", &r, &fill) != 0)
        return NULL;
    PyObject *result = NULL;
    int64_t *values = NULL;
    int have_index = 0, have_shard = 0, have_checked = 0, ndim = 0;
    Axis axes[MAX_AXES];
    const int64_t cells = axes_of(args[COMMON], axes, &ndim, &values);
    if (cells < 0)
        goto done;
    if (PyObject_GetBuffer(args[COMMON + 1], &index, PyBUF_SIMPLE) != 0)
        goto done;
    have_index = 1;
    if (PyObject_GetBuffer(args[COMMON + 2], &shard, PyBUF_SIMPLE) != 0)
        goto done;
    have_shard = 1;
    if (args[COMMON + 3] != Py_None) {
        if (PyObject_GetBuffer(args[COMMON + 3], &checked, PyBUF_WRITABLE) != 0)
            goto done;
        have_checked = 1;
    }
    Source src = {(const uint64_t *)index.buf, (int64_t)(index.len / 16),
                  (const unsigned char *)shard.buf, (int64_t)shard.len,
                  have_checked ? (unsigned char *)checked.buf : NULL, NULL, NULL, NULL};
    if (have_checked && checked.len < src.entries) {
        PyErr_SetString(PyExc_ValueError, "checked is shorter than the index");
        goto done;
    }
    result = run_released(&r, axes, ndim, &src, (const char *)fill.buf);
done:
    free(values);
    free(r.scratch);
    if (have_checked)
        PyBuffer_Release(&checked);
    if (have_shard)
        PyBuffer_Release(&shard);
    if (have_index)
        PyBuffer_Release(&index);
    PyBuffer_Release(&fill);
    return result;
}

PyDoc_STRVAR(read_chunks_doc,
             "read_chunks(getitem, decompress, cz, cy, cx, itemsize, trailer, fill, out, "
             "zstride, ystride, axes, chunks, checked, entries) -> int\n\n"
             "As read_shard, the chunks' bytes given instead: ``chunks`` one buffer per chunk "
             "of the box's grid in C order (None: never written); ``checked`` for each, the "
             "bytearray of its map's checked slots (or None: check it), ``entries`` the "
             "length those bytearrays must have.");

static PyObject *read_chunks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Reader r;
    Py_buffer fill;
    if (reader_of(args, nargs, 4, "read_chunks", &r, &fill) != 0)
        return NULL;
    PyObject *result = NULL, *list = NULL, *marks = NULL;
    int64_t *values = NULL, *sizes = NULL;
    const unsigned char **chunks = NULL;
    unsigned char **flags = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t held = 0;
    const long long entries = PyLong_AsLongLong(args[COMMON + 3]);
    if (entries < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "entries must be >= 0");
        PyBuffer_Release(&fill);
        free(r.scratch);
        return NULL;
    }
    int ndim = 0;
    Axis axes[MAX_AXES];
    const int64_t cells = axes_of(args[COMMON], axes, &ndim, &values);
    if (cells < 0)
        goto done;
    list = PySequence_Fast(args[COMMON + 1], "chunks must be a sequence");
    if (list == NULL)
        goto done;
    marks = PySequence_Fast(args[COMMON + 2], "checked must be a sequence");
    if (marks == NULL)
        goto done;
    if (PySequence_Fast_GET_SIZE(list) != cells || PySequence_Fast_GET_SIZE(marks) != cells) {
        PyErr_SetString(PyExc_ValueError, "one chunk (or None) per cell of the grid");
        goto done;
    }
    views = malloc(sizeof(Py_buffer) * 2 * (size_t)cells);
    chunks = malloc(sizeof(*chunks) * (size_t)cells);
    flags = malloc(sizeof(*flags) * (size_t)cells);
    sizes = malloc(sizeof(int64_t) * (size_t)cells);
    if (views == NULL || chunks == NULL || flags == NULL || sizes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < cells; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(list, i);
        PyObject *mark = PySequence_Fast_GET_ITEM(marks, i);
        chunks[i] = NULL;
        flags[i] = NULL;
        sizes[i] = 0;
        if (item != Py_None) {
            if (PyObject_GetBuffer(item, &views[held], PyBUF_SIMPLE) != 0)
                goto done;
            chunks[i] = (const unsigned char *)views[held].buf;
            sizes[i] = (int64_t)views[held].len;
            held++;
        }
        if (mark != Py_None) {
            if (PyObject_GetBuffer(mark, &views[held], PyBUF_WRITABLE) != 0)
                goto done;
            flags[i] = (unsigned char *)views[held].buf;
            held++;
            if (views[held - 1].len < entries) {
                PyErr_SetString(PyExc_ValueError, "a checked bytearray is shorter than the index");
                goto done;
            }
        }
    }
    /* Every slot of the grid must lie inside the checked bytes. */
    int64_t top = 0;
    for (int a = 0; a < ndim; a++) {
        int64_t most = 0;
        for (int64_t k = 0; k < axes[a].n; k++)
            if (axes[a].slot[k] > most)
                most = axes[a].slot[k];
            else if (axes[a].slot[k] < 0)
                top = INT64_MAX / 2;
        top += most;
    }
    int any_flags = 0;
    for (Py_ssize_t i = 0; i < cells; i++)
        any_flags |= flags[i] != NULL;
    if (any_flags && top >= entries) {
        PyErr_SetString(PyExc_ValueError, "a slot lies outside the index");
        goto done;
    }
    Source src = {NULL, 0, NULL, 0, NULL, chunks, sizes, flags};
    result = run_released(&r, axes, ndim, &src, (const char *)fill.buf);
done:
    for (Py_ssize_t i = 0; i < held; i++)
        PyBuffer_Release(&views[i]);
    free(views);
    free(chunks);
    free(flags);
    free(sizes);
    free(values);
    free(r.scratch);
    Py_XDECREF(list);
    Py_XDECREF(marks);
    PyBuffer_Release(&fill);
    return result;
}

static PyMethodDef methods[] = {
    {"read_shard", (PyCFunction)(void (*)(void))read_shard, METH_FASTCALL, read_shard_doc},
    {"read_chunks", (PyCFunction)(void (*)(void))read_chunks, METH_FASTCALL, read_chunks_doc},
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
