"""The NIfTI header check that runs before any voxel is read.

SimpleITK reads a header whose fields disagree with each other without a word (an int16
``datatype`` with ``bitpix`` 8 comes back half byte-swapped, half zeros), so every field that
decides how the payload bytes become voxels is checked for consistency here, and a header that
fails is refused with a message naming the file and the fields. NIfTI-2 files are refused by
name: the bundled ITK does not read them.
"""

from __future__ import annotations

import math
import struct

__all__ = ["NIFTI_DTYPES", "header_refusal"]

#: The NIfTI-1 ``datatype`` codes a phase or mask may have, as numpy type codes.
NIFTI_DTYPES: dict[int, str] = {
    2: "u1",
    4: "i2",
    8: "i4",
    16: "f4",
    64: "f8",
    256: "i1",
    512: "u2",
    768: "u4",
    1024: "i8",
    1280: "u8",
}

_NAMES = {2: "uint8", 4: "int16", 8: "int32", 16: "float32", 64: "float64", 256: "int8"}
_NAMES |= {512: "uint16", 768: "uint32", 1024: "int64", 1280: "uint64"}
_OTHER = {
    1: "binary",
    32: "complex64",
    128: "rgb24",
    1536: "float128",
    1792: "complex128",
    2048: "complex256",
    2304: "rgba32",
}
_NIFTI1_HEADER = 348
_NIFTI1_MIN_OFFSET = 352


class _Refused(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _refuse(name: str, what: str, rule: str = "header") -> _Refused:
    return _Refused(rule, f"{name}: inconsistent NIfTI header: {what}; refused")


def header_refusal(name: str, head: bytes) -> tuple[str, str] | None:
    """``(rule, message)`` when the header's ``datatype``, ``bitpix``, dims, ``vox_offset``,
    ``scl_*`` or extensions disagree, else None; ``head`` is the file's first bytes (header,
    then extensions as far as they were read)."""
    try:
        _check(name, head)
    except _Refused as exc:
        return exc.rule, exc.message
    return None


def _check(name: str, head: bytes) -> None:
    if len(head) < _NIFTI1_HEADER:
        raise _Refused("truncated", f"{name}: file ends inside the NIfTI header")
    for order in ("<", ">"):
        (sizeof_hdr,) = struct.unpack_from(order + "i", head, 0)
        if sizeof_hdr == 540:
            raise _Refused(
                "file_type",
                f"{name}: a NIfTI-2 file (sizeof_hdr 540); only NIfTI-1 is supported, "
                "convert it to NIfTI-1 first (e.g. nibabel.Nifti1Image)",
            )
        if sizeof_hdr == _NIFTI1_HEADER:
            _check_nifti1(name, head, order)
            return
    raise _Refused("file_type", f"{name}: not a NIfTI file (bad header size field)")


def _check_nifti1(name: str, head: bytes, order: str) -> None:
    magic = head[344:348]
    if magic != b"n+1\x00":
        raise _Refused("file_type", f"{name}: not a single-file NIfTI-1 (magic {magic!r})")
    dim = struct.unpack_from(order + "8h", head, 40)
    datatype, bitpix = struct.unpack_from(order + "2h", head, 70)
    pixdim = struct.unpack_from(order + "8f", head, 76)
    vox_offset, slope, inter = struct.unpack_from(order + "3f", head, 108)
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise _refuse(name, f"dim[0] is {ndim} (must be 1 to 7)", "dims")
    if any(d <= 0 for d in dim[1 : ndim + 1]):
        raise _refuse(name, f"dim[1..{ndim}] = {tuple(dim[1 : ndim + 1])} has a size <= 0", "dims")
    if datatype not in NIFTI_DTYPES:
        kind = _OTHER.get(datatype, "unknown")
        raise _Refused(
            "pixel_type",
            f"{name}: datatype {datatype} ({kind}) is not a supported scalar voxel type "
            f"(supported: {', '.join(_NAMES[c] for c in sorted(_NAMES))}); refused",
        )
    want_bits = int(NIFTI_DTYPES[datatype][1]) * 8
    if bitpix != want_bits:
        raise _refuse(
            name,
            f"datatype {datatype} ({_NAMES[datatype]}) needs bitpix {want_bits}, "
            f"the header has bitpix {bitpix}",
        )
    bad_pixdim = [
        f"pixdim[{i}]={pixdim[i]!r}"
        for i in range(1, min(ndim, 3) + 1)
        if not math.isfinite(pixdim[i])
    ]
    if bad_pixdim:
        raise _refuse(name, "non-finite voxel spacing " + ", ".join(bad_pixdim))
    if not math.isfinite(vox_offset) or vox_offset != int(vox_offset):
        raise _refuse(name, f"vox_offset {vox_offset!r} is not a whole number of bytes")
    if vox_offset < _NIFTI1_MIN_OFFSET:
        raise _refuse(
            name, f"vox_offset {int(vox_offset)} is inside the header (a .nii needs >= 352)"
        )
    if not (math.isfinite(slope) and math.isfinite(inter)):
        raise _refuse(name, f"scl_slope {slope!r} / scl_inter {inter!r} are not finite")
    if slope == 0.0 and inter != 0.0:
        # slope 0 means "no scaling" in NIfTI-1: an intercept beside it is ambiguous.
        raise _refuse(name, f"scl_slope 0 (no scaling) with scl_inter {inter!r}")
    _check_extensions(name, head, order, int(vox_offset))


def _check_extensions(name: str, head: bytes, order: str, vox_offset: int) -> None:
    """The extension chain (each ``esize`` a positive multiple of 16) must end at or before
    ``vox_offset``; the voxels never start inside an extension."""
    if len(head) < _NIFTI1_MIN_OFFSET or head[348] == 0:
        return
    pos = _NIFTI1_MIN_OFFSET
    while pos + 8 <= min(len(head), vox_offset):
        esize, ecode = struct.unpack_from(order + "2i", head, pos)
        if esize == 0:  # zero padding after the last extension
            return
        if esize < 16 or esize % 16:
            raise _refuse(name, f"header extension at byte {pos} has esize {esize} (ecode {ecode})")
        if pos + esize > vox_offset:
            raise _refuse(
                name,
                f"header extension at byte {pos} (esize {esize}) runs past vox_offset {vox_offset}",
            )
        pos += esize
