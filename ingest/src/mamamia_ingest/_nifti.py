"""Reading one NIfTI volume safely: header first, budget, full payload check, exact voxels.

SimpleITK loads truncated ``.nii``/``.nii.gz`` files without an error (zero-filling the rest), so
the payload is decompressed here, as a stream, and counted against what the header promises.
The same pass hashes the source bytes. Geometry always comes from SimpleITK's own header reader,
through a private symlink, because ITK silently opens ``x.nii`` when asked for ``x.nii.gz`` if
both exist. Every header is checked for consistency first (``_nifti_header``). When the header
needs no intensity scaling and the payload holds no NaN/inf, the voxels are the raw payload
reinterpreted (what ITK returns in that case); otherwise SimpleITK reads the checked,
decompressed copy (it reads NaN/inf as 0; they are counted).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from mamamia import MamamiaError
from mamamia_ingest._nifti_header import NIFTI_DTYPES, header_refusal

_decompressobj: Any = zlib.decompressobj
_INFLATE_ERRORS: tuple[Any, ...] = (zlib.error,)
try:  # ISA-L inflates ~3x faster than zlib (same API, its own error class)
    from isal import isal_zlib

    _decompressobj = isal_zlib.decompressobj
    _INFLATE_ERRORS = (zlib.error, isal_zlib.error)
except ImportError:  # pragma: no cover - isal is a declared dependency
    pass

__all__ = [
    "DEFAULT_MAX_VOLUME_BYTES",
    "HeaderInfo",
    "LoadedVolume",
    "NiftiError",
    "PrivateDir",
    "hash_file",
    "load_volume",
    "read_header_info",
]

#: Largest voxel payload one phase may have (the biggest real phase is ~0.5 GiB).
DEFAULT_MAX_VOLUME_BYTES = 2 << 30

_BLOCK = 1 << 20
#: Largest header + extensions copied for ITK's header read (bigger ones: read in place).
_MAX_HEADER_COPY = 1 << 20
#: Bytes of trailing data after the payload that are still read to check the gzip CRC.
_MAX_TRAILING = 64 << 20

_NIFTI_DTYPES = NIFTI_DTYPES

_SITK_DTYPES: dict[int, np.dtype[Any]] = {
    sitk.sitkUInt8: np.dtype(np.uint8),
    sitk.sitkInt8: np.dtype(np.int8),
    sitk.sitkUInt16: np.dtype(np.uint16),
    sitk.sitkInt16: np.dtype(np.int16),
    sitk.sitkUInt32: np.dtype(np.uint32),
    sitk.sitkInt32: np.dtype(np.int32),
    sitk.sitkUInt64: np.dtype(np.uint64),
    sitk.sitkInt64: np.dtype(np.int64),
    sitk.sitkFloat32: np.dtype(np.float32),
    sitk.sitkFloat64: np.dtype(np.float64),
}


class NiftiError(MamamiaError):
    """A volume that cannot be ingested; ``rule`` is the Problem rule name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class HeaderInfo:
    """Geometry and pixel type as SimpleITK reports them (x, y, z order, LPS)."""

    size_xyz: tuple[int, ...]
    spacing_xyz: tuple[float, ...]
    origin_xyz: tuple[float, ...]
    direction: tuple[float, ...]
    dtype: np.dtype[Any]
    orientation: str

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        x, y, z = self.size_xyz
        return (z, y, x)

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.size_xyz:
            n *= s
        return n * self.dtype.itemsize


@dataclass(frozen=True)
class LoadedVolume:
    """One volume's voxels, ``(z, y, x)`` like ``sitk.GetArrayFromImage``, and its source hash."""

    array: np.ndarray[Any, Any]
    info: HeaderInfo
    sha256: str
    #: NaN/+-inf voxels in the file; SimpleITK (and so the catalog) reads each of them as 0.
    non_finite: int = 0
    #: Where the file's voxels are finite (``(z, y, x)``), only when ``non_finite`` > 0.
    finite: np.ndarray[Any, np.dtype[np.bool_]] | None = None


class PrivateDir:
    """A private temporary folder; every source is reached through a link with a fixed name,
    so no sibling file (``x.nii`` next to ``x.nii.gz``) can be picked up instead."""

    def __init__(self, parent: Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="mamamia-nifti-", dir=parent))
        #: What ITK read from each header (bytes up to the voxels) copied here: a case's
        #: phases usually share one header byte for byte, and the same bytes give the same
        #: geometry, so ITK reads each distinct header once.
        self.headers: dict[bytes, HeaderInfo] = {}

    def link(self, source: Path, name: str) -> Path:
        target = self.path / name
        if target.exists() or target.is_symlink():
            target.unlink()
        try:
            os.symlink(source.resolve(), target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    def clear(self) -> None:
        for child in self.path.iterdir():
            child.unlink()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    if name.endswith(".nii"):
        return ".nii"
    raise NiftiError("file_type", f"{path.name}: not a .nii or .nii.gz file")


def _peek_header(path: Path) -> tuple[_RawHeader, bytes]:
    """The file's own NIfTI header (ITK quietly turns a negative dimension into 1), and the
    bytes before the voxels (header and extensions; fewer if the file ends first)."""
    gz = path.name.lower().endswith(".gz")
    d = zlib.decompressobj(wbits=31) if gz else None
    head = b""
    want = 540
    raw: _RawHeader | None = None
    with path.open("rb") as f:
        while True:
            if len(head) >= want:
                if raw is None:
                    raw = _parse_header(path.name, head)
                    want = min(raw.vox_offset, _MAX_HEADER_COPY)
                    if len(head) >= want:
                        break
                    continue
                break
            if d is None:
                block = f.read(want - len(head))
                if not block:
                    break
                head += block
                continue
            if d.unconsumed_tail:
                block = d.unconsumed_tail
            else:
                block = f.read(4096)
                if not block:
                    break
            try:
                head += d.decompress(block, want - len(head))
            except zlib.error as exc:
                raise NiftiError(
                    "corrupt", f"{path.name}: the gzip stream is corrupt ({exc})"
                ) from None
            if d.eof:
                break
    if raw is None:
        raw = _parse_header(path.name, head)
    return raw, head[: raw.vox_offset]


def _header_copy(private: PrivateDir, head: bytes) -> Path:
    """``head`` as ``copy.nii`` in the private folder, rewritten in place (one inode per
    folder: creating files is what costs on a busy file system). Not ``header.nii``: ITK asked
    for the fallback link ``header.nii.gz`` would open a ``header.nii`` beside it instead."""
    target = private.path / "copy.nii"
    with target.open("wb") as f:
        f.write(head)
    return target


def read_header_info(path: Path, private: PrivateDir, max_bytes: int) -> HeaderInfo:
    """SimpleITK's header-only read, checked against the voxel budget before anything loads.

    ITK reads an uncompressed copy of the header (and extensions) rather than the source: the
    same header bytes give the same geometry, and ITK opening a ``.nii.gz`` costs ~2 ms of
    inflate set-up per file, more than the rest of the header read. A header whose extensions
    are unusually large is read from the source, through a private link."""
    raw, head = _peek_header(path)
    _check(path.name, head)  # again, now with the extensions
    if raw.payload_bytes > max_bytes:
        raise NiftiError(
            "voxel_budget",
            f"{path.name}: header dimensions {raw.dims} x {max(raw.bitpix, 8) // 8} bytes = "
            f"{raw.payload_bytes} bytes exceed the per-volume budget of {max_bytes} bytes; "
            "refused before loading",
        )
    copied = len(head) == raw.vox_offset
    info = private.headers.get(head) if copied else None
    if info is None:
        info = _itk_header_info(path, private, raw, head, max_bytes)
        if copied:
            private.headers[head] = info
    if info.nbytes > max_bytes:
        raise NiftiError(
            "voxel_budget",
            f"{path.name}: header dimensions {info.size_xyz} x {info.dtype.itemsize} bytes = "
            f"{info.nbytes} bytes exceed the per-volume budget of {max_bytes} bytes; refused "
            "before loading",
        )
    return info


def _itk_header_info(
    path: Path, private: PrivateDir, raw: _RawHeader, head: bytes, max_bytes: int
) -> HeaderInfo:
    """SimpleITK's reading of ``path``'s header: from the copy ``head`` when it is whole."""
    if len(head) == raw.vox_offset:
        link = _header_copy(private, head)
        keep = True
    else:
        link = private.link(path, "header" + _suffix(path))
        keep = False
    reader = sitk.ImageFileReader()
    reader.SetImageIO("NiftiImageIO")
    reader.SetFileName(str(link))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if not keep:
            link.unlink()
        # Say why when the stream itself is broken (truncated or corrupt gzip), not just
        # that ITK failed; the check is bounded by the same budget.
        _read_payload(path, max_bytes)
        first = _itk_text(exc, (link, path.name))
        raise NiftiError(
            "header", f"{path.name}: SimpleITK cannot read the header ({first})"
        ) from None
    if not keep:
        link.unlink()
    size = tuple(int(s) for s in reader.GetSize())
    if len(size) != 3:
        raise NiftiError("dims", f"{path.name}: expected a 3D volume, the header has {len(size)}D")
    if any(s <= 0 for s in size):
        raise NiftiError("dims", f"{path.name}: the header has a dimension <= 0: {size}")
    if reader.GetNumberOfComponents() != 1 or reader.GetPixelID() not in _SITK_DTYPES:
        raise NiftiError(
            "pixel_type",
            f"{path.name}: unsupported pixel type {sitk.GetPixelIDValueAsString(reader.GetPixelID())!r} "
            f"with {reader.GetNumberOfComponents()} components",
        )
    dtype = _SITK_DTYPES[reader.GetPixelID()]
    direction = tuple(float(d) for d in reader.GetDirection())
    info = HeaderInfo(
        size_xyz=size,
        spacing_xyz=tuple(float(s) for s in reader.GetSpacing()),
        origin_xyz=tuple(float(o) for o in reader.GetOrigin()),
        direction=direction,
        dtype=dtype,
        orientation=str(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction)),
    )
    if tuple(d for d in raw.dims if d != 1) != tuple(d for d in size if d != 1):
        raise NiftiError(
            "header",
            f"{path.name}: SimpleITK reports size {size} but the header says {raw.dims}",
        )
    return info


@dataclass(frozen=True)
class _RawHeader:
    byteorder: str
    dims: tuple[int, ...]
    datatype: int
    bitpix: int
    vox_offset: int
    scl_slope: float
    scl_inter: float

    @property
    def payload_bytes(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n * max(self.bitpix, 8) // 8


def _check(name: str, head: bytes) -> None:
    refusal = header_refusal(name, head)
    if refusal is not None:
        raise NiftiError(*refusal)


def _parse_header(name: str, head: bytes) -> _RawHeader:
    if len(head) < 348:
        raise NiftiError("truncated", f"{name}: file ends inside the NIfTI header")
    _check(name, head)
    for order in ("<", ">"):
        (sizeof_hdr,) = struct.unpack_from(order + "i", head, 0)
        if sizeof_hdr == 348:
            dim = struct.unpack_from(order + "8h", head, 40)
            datatype, bitpix = struct.unpack_from(order + "2h", head, 70)
            vox_offset_f, slope, inter = struct.unpack_from(order + "3f", head, 108)
            vox_offset = int(vox_offset_f)  # checked: whole, >= 352
            break
    else:
        raise NiftiError("file_type", f"{name}: not a NIfTI file (bad header size field)")
    ndim = int(dim[0])
    if not 1 <= ndim <= 7:
        raise NiftiError("dims", f"{name}: the header's dim[0] is {ndim}")
    dims = tuple(int(d) for d in dim[1 : ndim + 1])
    if any(d <= 0 for d in dims):
        raise NiftiError("dims", f"{name}: the header has a dimension <= 0: {dims}")
    return _RawHeader(order, dims, int(datatype), int(bitpix), int(vox_offset), slope, inter)


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _read_payload(
    path: Path, max_bytes: int
) -> tuple[_RawHeader, np.ndarray[Any, np.dtype[np.uint8]], str]:
    """Decompress (if gzip) and hash in one pass; return the header and header+payload bytes.

    The stream is inflated in pieces of at most ``_BLOCK`` bytes straight into one buffer of
    the size the header promises (uninitialised: every byte of it is written or the file is
    reported truncated), so each piece is copied while it is still in cache."""
    gz = path.name.lower().endswith(".gz")
    h = hashlib.sha256()
    d = _decompressobj(wbits=31) if gz else None
    head = bytearray()
    buf: np.ndarray[Any, np.dtype[np.uint8]] | None = None
    header: _RawHeader | None = None
    expected = 0
    filled = 0
    trailing = 0
    name = path.name
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
            data: bytes = block
            while data:
                if d is None:
                    out, data = data, b""
                else:
                    try:
                        if d.eof:  # a second gzip member (concatenated files are legal gzip)
                            d = _decompressobj(wbits=31)
                        out = d.decompress(data, _BLOCK)
                        data = d.unused_data if d.eof else d.unconsumed_tail
                    except _INFLATE_ERRORS as exc:
                        raise NiftiError(
                            "corrupt", f"{name}: the gzip stream is corrupt ({exc})"
                        ) from None
                if buf is None:
                    head += out
                    if len(head) < 540:
                        continue
                    header = _parse_header(name, bytes(head[:540]))
                    expected = header.vox_offset + header.payload_bytes
                    if header.payload_bytes > max_bytes:
                        raise NiftiError(
                            "voxel_budget",
                            f"{name}: the header promises {header.payload_bytes} bytes of voxels, "
                            f"over the per-volume budget of {max_bytes}",
                        )
                    buf = np.empty(expected, np.uint8)
                    out, head = bytes(head), bytearray()
                take = min(len(out), expected - filled)
                if take > 0:
                    buf[filled : filled + take] = np.frombuffer(out, np.uint8, take)
                    filled += take
                trailing += len(out) - max(take, 0)
                if trailing > _MAX_TRAILING:
                    raise NiftiError(
                        "corrupt",
                        f"{name}: more than {_MAX_TRAILING} bytes of data after the voxel payload",
                    )
    if buf is None:
        if len(head) < 348:
            raise NiftiError("truncated", f"{name}: file ends inside the NIfTI header")
        header = _parse_header(name, bytes(head))
        expected = header.vox_offset + header.payload_bytes
        filled = min(len(head), expected)
        buf = np.frombuffer(head, np.uint8, filled).copy()
    assert header is not None
    if d is not None and not d.eof:
        raise NiftiError(
            "truncated",
            f"{name}: the gzip stream ends early (truncated file; "
            f"{min(filled, expected)} of {expected} bytes decompressed)",
        )
    if filled < expected:
        raise NiftiError(
            "truncated",
            f"{name}: truncated: the header promises {expected} bytes (header + voxels), "
            f"the file holds {filled}",
        )
    return header, buf, h.hexdigest()


def _itk_text(exc: BaseException, *paths: tuple[Path, str]) -> str:
    """ITK's last error line without the object's pointer address or private paths, so that
    two runs report the same text."""
    text = str(exc).strip()
    for path, name in paths:
        text = text.replace(str(path), name)
    text = _POINTER.sub("", text)
    return text.splitlines()[-1].strip() if text else "unknown error"


_POINTER = re.compile(r"\(0x[0-9a-fA-F]+\)")


def _finite(
    buf: np.ndarray[Any, np.dtype[np.uint8]], header: _RawHeader, info: HeaderInfo
) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
    """Where the file's float voxels are finite, or None when all of them are (or ints)."""
    code = _NIFTI_DTYPES.get(header.datatype)
    if code is None or code[0] != "f":
        return None
    n = info.nbytes // info.dtype.itemsize
    finite = np.isfinite(np.frombuffer(buf, header.byteorder + code, n, header.vox_offset))
    return None if bool(finite.all()) else finite.reshape(info.shape_zyx)


def load_volume(path: Path, info: HeaderInfo, private: PrivateDir, max_bytes: int) -> LoadedVolume:
    """The voxels of ``path`` exactly as ``sitk.GetArrayFromImage(sitk.ReadImage(path))``."""
    header, buf, digest = _read_payload(path, max_bytes)
    code = _NIFTI_DTYPES.get(header.datatype)
    no_scaling = header.scl_slope in (0.0, 1.0) and header.scl_inter == 0.0
    n_voxels = 1
    for s in info.size_xyz:
        n_voxels *= s
    finite = _finite(buf, header, info)
    if code is not None and no_scaling and np.dtype(code) == info.dtype and finite is None:
        count = header.payload_bytes // np.dtype(code).itemsize
        if count == n_voxels:
            raw = np.frombuffer(
                buf, dtype=header.byteorder + code, count=count, offset=header.vox_offset
            )
            if not raw.dtype.isnative:
                raw = raw.astype(raw.dtype.newbyteorder("="))
            return LoadedVolume(raw.reshape(info.shape_zyx), info, digest)
    # Scaled, non-finite, odd or mismatched: SimpleITK reads the checked, decompressed copy.
    tmp = private.path / "payload.nii"
    with tmp.open("wb") as f:
        f.write(buf.data)
    del buf
    try:
        image = sitk.ReadImage(str(tmp))
    except RuntimeError as exc:
        raise NiftiError(
            "corrupt",
            f"{path.name}: SimpleITK cannot read the voxels ({_itk_text(exc, (tmp, path.name))})",
        ) from None
    finally:
        tmp.unlink()
    array = sitk.GetArrayFromImage(image)
    if array.shape != info.shape_zyx or array.dtype != info.dtype:
        raise NiftiError(
            "header",
            f"{path.name}: voxels read as {array.dtype}{array.shape}, "
            f"the header said {info.dtype}{info.shape_zyx}",
        )
    non_finite = 0 if finite is None else finite.size - int(np.count_nonzero(finite))
    return LoadedVolume(array, info, digest, non_finite, finite)
