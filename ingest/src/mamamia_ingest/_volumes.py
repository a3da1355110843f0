"""One case's volumes become one immutable generation: ``volumes/<CASE>/<GENERATION>.zarr``.

The generation is written under ``<GEN>.zarr.tmp-<uuid>``, its root attributes (with
``mamamia.complete = true``) are written last, and the folder is then renamed to its final name,
which is never overwritten. Everything the tables need about the case (volume rows, features,
problems, source records) is kept in the root attributes too, so a later or resumed ingest
reuses a finished generation without reading its voxels.

Runs in worker processes: plain picklable inputs and outputs, no shared state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mamamia.raw import MASK_KINDS, SourceFile
from mamamia_ingest._features import (
    check_mask_values,
    dice,
    enhancement_ratio,
    intensity_stats,
    mask_features,
    masked_mean,
    voxel_checksum,
)
from mamamia_ingest._kinetic_features import FEATURES_VERSION, KineticsAccumulator
from mamamia_ingest._lifecycle import publish_refusal
from mamamia_ingest._nifti import (
    DEFAULT_MAX_VOLUME_BYTES,
    HeaderInfo,
    NiftiError,
    PrivateDir,
    hash_file,
    load_volume,
    read_header_info,
)
from mamamia_ingest._ome_metadata import (
    geometry_mismatch,
    geometry_row,
    half_shape,
    multiscale_block,
)
from mamamia_ingest._shape_features import shape_features
from mamamia_ingest._shard_write import FORMAT2_CODEC, ShardWriter, level_codec, volume_writer
from mamamia_ingest._volume_checks import lossy_mix_problem, non_finite_problems
from mamamia_ingest._zarr_write import ChunkWriter, group_metadata, write_new_file
from mamamia_schema import Problem, Severity

__all__ = [
    "CODEC",
    "DEFAULT_CHUNKS_ZYX",
    "FORMAT_VERSION",
    "LAYOUT_VERSION",
    "CaseJob",
    "CaseResult",
    "VolumeSettings",
    "array_writer",
    "finished_generation",
    "generation_id",
    "init_worker",
    "process_case",
    "reuse_unchanged",
]

FORMAT_VERSION = 1
#: Bumped whenever the bytes written for the same inputs and settings change.
#: 2: voxel checksums ``crc32c+crc32:`` instead of ``sha256:``.
#: 3: NaN/inf voxels stored as 0 (SimpleITK's values), statistics over the finite voxels.
LAYOUT_VERSION = 3
CODEC = "bytes|blosc:zstd:3:shuffle|crc32c"
# Previews (level 1) are read whole for slice PNGs and are 1/8 of the data: lz4 compresses and
# decodes them several times faster than zstd for a little more disk.
PREVIEW_CODEC = "bytes|blosc:lz4:5:shuffle|crc32c"
DEFAULT_CHUNKS_ZYX: tuple[int, int, int] = (32, 128, 128)


@dataclass(frozen=True)
class VolumeSettings:
    """Volume settings; only ``byte_settings`` enter the generation id."""

    chunks_zyx: tuple[int, int, int] = DEFAULT_CHUNKS_ZYX
    max_volume_bytes: int = DEFAULT_MAX_VOLUME_BYTES
    #: 1: one file per chunk; 2: one shard per phase of inner chunks ``chunks_zyx``.
    format_version: int = FORMAT_VERSION

    def byte_settings(self) -> dict[str, Any]:
        if self.format_version == 2:
            return {
                "format_version": 2,
                "layout_version": LAYOUT_VERSION,
                "chunks": [1, *self.chunks_zyx],
                "shards": "phase",
                "codec": FORMAT2_CODEC,
                "features_version": FEATURES_VERSION,
            }
        return {
            "format_version": FORMAT_VERSION,
            "layout_version": LAYOUT_VERSION,
            "chunks": [1, *self.chunks_zyx],
            "codec": CODEC,
            "preview_codec": PREVIEW_CODEC,
            # Generations of an older feature set are rebuilt, so every case gets the new ones.
            "features_version": FEATURES_VERSION,
        }


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs for one case."""

    patient_id: str
    files: tuple[SourceFile, ...]
    phase_times_s: tuple[float | None, ...] | None
    catalog_root: Path
    settings: VolumeSettings


@dataclass
class CaseResult:
    """What one case contributes to the tables."""

    patient_id: str
    generation: str | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bytes_read: int = 0
    reused: bool = False

    @property
    def zarr_dir(self) -> str | None:
        if self.generation is None:
            return None
        return f"volumes/{self.patient_id}/{self.generation}.zarr"


def init_worker() -> None:
    """One thread per worker process: parallelism comes from processes (``--jobs``)."""
    import numcodecs.blosc
    import zarr

    numcodecs.blosc.set_nthreads(1)
    zarr.config.set({"threading.max_workers": 1})


def generation_id(
    settings: VolumeSettings, phase_times: tuple[float | None, ...] | None, sha: dict[str, str]
) -> str:
    """16 hex chars over the source hashes, the phase times and the byte-affecting settings."""
    doc = {
        "settings": settings.byte_settings(),
        "phase_times_s": list(phase_times) if phase_times is not None else None,
        "files": sorted([role, digest] for role, digest in sha.items()),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _problem(
    severity: Severity,
    case: str,
    file: str | None,
    rule: str,
    message: str,
    value: str | None = None,
) -> Problem:
    return Problem(severity=severity, case=case, file=file, rule=rule, message=message, value=value)


def finished_generation(gen_dir: Path) -> dict[str, Any] | None:
    """The ``mamamia`` block of a finished generation, or None if it is not one."""
    try:
        doc = json.loads((gen_dir / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    block = doc.get("attributes", {}).get("mamamia") if isinstance(doc, dict) else None
    if not isinstance(block, dict) or block.get("complete") is not True:
        return None
    return block


def _existing(case_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(case_dir))
    except OSError:
        return out
    for name in names:
        if name.endswith(".zarr") and len(name) == 21:
            block = finished_generation(case_dir / name)
            if block is not None:
                out[name[:16]] = block
    return out


def _from_attrs(job: CaseJob, gen: str, block: dict[str, Any], sha: dict[str, str]) -> CaseResult:
    result = CaseResult(job.patient_id, generation=gen, reused=True)
    result.features = dict(block.get("features", {}))
    result.problems = [Problem.model_validate(p) for p in block.get("problems", [])]
    for row in block.get("volumes", []):
        row = dict(row)
        row["zarr_path"] = f"volumes/{job.patient_id}/{gen}.zarr/{row.pop('array')}"
        result.volumes.append(row)
    result.sources = _source_records(job, sha)
    return result


def _source_records(job: CaseJob, sha: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "patient_id": job.patient_id,
            "role": f.role,
            "path": f.rel,
            "size": f.size,
            "mtime_ns": f.mtime_ns,
            "sha256": sha.get(f.role),
        }
        for f in job.files
    ]


def _try_reuse(
    job: CaseJob, case_dir: Path, *, rehash: bool = True
) -> tuple[CaseResult | None, dict[str, str], int]:
    """A finished generation for exactly these sources, if one exists; else the hashes known.

    Also returns the bytes hashed here. ``rehash=False`` decides from stat() alone (role,
    size, mtime_ns against the records of the finished generations) and reads no file.
    """
    existing = _existing(case_dir)
    sha: dict[str, str] = {}
    seen: dict[tuple[str, int, int], str] = {}
    sized: set[tuple[tuple[str, int], ...]] = set()
    for block in existing.values():
        files = block.get("source", {}).get("files", [])
        for rec in files:
            if rec.get("sha256"):
                seen[(rec["role"], rec["size"], rec["mtime_ns"])] = rec["sha256"]
        sized.add(tuple(sorted((rec["role"], rec["size"]) for rec in files)))
    for f in job.files:
        if f.role not in sha and (f.role, f.size, f.mtime_ns) in seen:
            sha[f.role] = seen[(f.role, f.size, f.mtime_ns)]
    hashed = 0
    if not existing:
        return None, sha, hashed
    if len(sha) < len(job.files):
        # Hash only when a finished generation could match (same roles and sizes), e.g. a
        # touched file or a resumed run; otherwise the build pass hashes as it reads.
        if not rehash or tuple(sorted((f.role, f.size) for f in job.files)) not in sized:
            return None, sha, hashed
        for f in job.files:
            if f.role not in sha:
                sha[f.role] = hash_file(f.path)
                hashed += f.size
    gen = generation_id(job.settings, job.phase_times_s, sha)
    if gen in existing:
        result = _from_attrs(job, gen, existing[gen], sha)
        result.bytes_read = hashed
        return result, sha, hashed
    return None, sha, hashed


def reuse_unchanged(job: CaseJob) -> CaseResult | None:
    """The finished generation of a case none of whose files changed by stat(), else None.

    Reads no source file (only the generations' root attributes), so the ingest process itself
    decides which cases need a worker; the result is the one ``process_case`` would return.
    """
    case_dir = job.catalog_root / "volumes" / job.patient_id
    return _try_reuse(job, case_dir, rehash=False)[0]


def array_writer(
    folder: Path,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    settings: VolumeSettings,
    *,
    label: bool = False,
) -> ChunkWriter | ShardWriter:
    """The writer of level ``name`` (``"0"`` or ``"1"``) of an array under ``folder`` (an
    image's, or a mask's: ``label``), in its codec (``level_codec``)."""
    sharded = settings.format_version == 2
    cname, clevel = level_codec(name, label=label, sharded=sharded)
    z, y, x = (max(1, min(c, n)) for c, n in zip(settings.chunks_zyx, shape[1:], strict=True))
    shape4 = (shape[0], shape[1], shape[2], shape[3])
    return volume_writer(folder / name, shape4, (1, z, y, x), dtype, cname, clevel, sharded=sharded)


def _write_group(folder: Path, attributes: dict[str, Any]) -> None:
    write_new_file(str(folder / "zarr.json"), [group_metadata(attributes)])


class _CaseFailed(Exception):
    pass


def process_case(job: CaseJob) -> CaseResult:
    """Write (or reuse) the generation of one case and return its table rows."""
    case_dir = job.catalog_root / "volumes" / job.patient_id
    result, sha, hashed = _try_reuse(job, case_dir)
    if result is not None:
        return result
    result = CaseResult(job.patient_id)
    result.bytes_read = hashed + sum(f.size for f in job.files)
    private = PrivateDir()
    tmp = case_dir / f"pending.zarr.tmp-{uuid.uuid4().hex}"
    try:
        _build(job, result, sha, private, tmp)
    except _CaseFailed:
        result.generation = None
        result.volumes = []
    except Exception as exc:  # one broken case must not stop the others
        result.generation = None
        result.volumes = []
        result.problems.append(
            _problem(
                Severity.ERROR,
                job.patient_id,
                None,
                "internal",
                f"case {job.patient_id}: ingest failed unexpectedly "
                f"({type(exc).__name__}: {exc}); its volumes are skipped",
            )
        )
    finally:
        private.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            case_dir.rmdir()  # only if this failed case left it empty
    result.sources = _source_records(job, sha)
    return result


def _build(
    job: CaseJob, result: CaseResult, sha: dict[str, str], private: PrivateDir, tmp: Path
) -> None:
    case = job.patient_id
    budget = job.settings.max_volume_bytes
    phases = [f for f in job.files if f.role.startswith("image:")]
    masks = {f.role: f for f in job.files if not f.role.startswith("image:")}

    def fail(f: SourceFile, rule: str, message: str) -> _CaseFailed:
        result.problems.append(
            _problem(Severity.ERROR, case, f.rel, rule, f"case {case}: {message}")
        )
        return _CaseFailed()

    # 1. Every header first: budget, dims and geometry are checked before any voxel loads.
    infos: dict[str, HeaderInfo] = {}
    failed = False
    for f in job.files:
        try:
            infos[f.role] = read_header_info(f.path, private, budget)
        except NiftiError as exc:
            if f.role.startswith("image:"):
                failed = True
                result.problems.append(
                    _problem(Severity.ERROR, case, f.rel, exc.rule, f"case {case}: {exc.message}")
                )
            else:
                result.problems.append(
                    _problem(
                        Severity.ERROR,
                        case,
                        f.rel,
                        exc.rule,
                        f"case {case}: {exc.message}; the {f.role} mask is left out",
                    )
                )
                masks.pop(f.role)
                # Hashed anyway, so the generation (and its reuse) accounts for this file.
                sha[f.role] = hash_file(f.path)
    if failed:
        raise _CaseFailed()
    ref = infos[phases[0].role]
    for f in phases[1:]:
        mismatch = geometry_mismatch(ref, infos[f.role])
        if mismatch:
            raise fail(f, "geometry", f"{f.rel}: {mismatch}; the case's volumes are skipped")
    for role, f in list(masks.items()):
        mismatch = geometry_mismatch(ref, infos[role])
        if mismatch:
            result.problems.append(
                _problem(
                    Severity.ERROR,
                    case,
                    f.rel,
                    "geometry",
                    f"case {case}: {role} mask {f.rel}: {mismatch}; the mask is left out",
                )
            )
            masks.pop(role)
    dtypes = {infos[f.role].dtype for f in phases}
    dtype = np.result_type(*sorted(dtypes, key=str))
    lossy = lossy_mix_problem(case, dtypes)
    if lossy is not None:
        result.problems.append(lossy)
        raise _CaseFailed()
    if len(dtypes) > 1:
        result.problems.append(
            _problem(
                Severity.WARNING,
                case,
                None,
                "dtype",
                f"case {case}: phases have different pixel types "
                f"({', '.join(sorted(str(d) for d in dtypes))}); stored as {dtype}",
            )
        )

    # 2. Masks (small, uint8) first: they feed the features and the enhancement ratio.
    mask_arrays: dict[str, np.ndarray[Any, Any]] = {}
    for role, f in list(masks.items()):
        try:
            vol = load_volume(f.path, infos[role], private, budget)
        except NiftiError as exc:
            result.problems.append(
                _problem(
                    Severity.ERROR,
                    case,
                    f.rel,
                    exc.rule,
                    f"case {case}: {exc.message}; the {role} mask is left out",
                )
            )
            sha[role] = hash_file(f.path)
            continue
        sha[role] = vol.sha256
        result.problems.extend(non_finite_problems(case, f.rel, vol.non_finite))
        bad = check_mask_values(vol.array)
        if bad:
            result.problems.append(
                _problem(
                    Severity.ERROR,
                    case,
                    f.rel,
                    "mask_values",
                    f"case {case}: {role} mask {f.rel} holds values other than 0 and 1 "
                    f"(e.g. {', '.join(repr(v) for v in bad)}); the mask is left out",
                    value=repr(bad[0]),
                )
            )
            continue
        mask_arrays[role] = vol.array.astype(np.uint8, copy=False)

    # 3. The image, phase by phase (memory: one phase plus the masks).
    case_dir = tmp.parent
    tmp.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(tmp)  # its zarr.json (the root group, with ``complete``) is written last
    shape4 = (len(phases), *ref.shape_zyx)
    full = array_writer(tmp, "0", shape4, dtype, job.settings)
    half = array_writer(tmp, "1", half_shape(shape4), dtype, job.settings)
    expert = mask_arrays.get("expert")
    kinetics = KineticsAccumulator(mask_arrays, job.phase_times_s, len(phases), ref.spacing_xyz)
    rows: list[dict[str, Any]] = []
    tumour_means: list[float | None] = []
    for p, f in enumerate(phases):
        try:
            vol = load_volume(f.path, infos[f.role], private, budget)
        except NiftiError as exc:
            raise fail(f, exc.rule, f"{exc.message}; the case's volumes are skipped") from None
        sha[f.role] = vol.sha256
        result.problems.extend(non_finite_problems(case, f.rel, vol.non_finite))
        data = vol.array if vol.array.dtype == dtype else vol.array.astype(dtype)
        full.write(p, data)
        # Gathered once: chunking the strided view would re-walk it chunk by chunk.
        half.write(p, np.ascontiguousarray(data[::2, ::2, ::2]))
        if p < 2:
            tumour_means.append(masked_mean(data, expert))
        kinetics.add(p, data)
        times = job.phase_times_s
        rows.append(
            {
                "patient_id": case,
                "kind": "image",
                "phase": p,
                "array": "0",
                **geometry_row(infos[f.role]),
                "dtype": str(dtype),
                "acquisition_time_s": times[p] if times is not None else None,
                "checksum": voxel_checksum(data),
                **intensity_stats(data if vol.finite is None else data[vol.finite]),
            }
        )
        del vol, data
    full.close()
    half.close()

    labels = tmp / "labels"
    os.mkdir(labels)
    label_names = [k.value for k in MASK_KINDS if k.value in mask_arrays]
    for kind in label_names:
        m = mask_arrays[kind]
        g = labels / kind
        os.mkdir(g)
        z, y, x = m.shape
        shape = (1, z, y, x)
        for name, level_shape, level in (
            ("0", shape, m),
            ("1", half_shape(shape), np.ascontiguousarray(m[::2, ::2, ::2])),
        ):
            writer = array_writer(
                g, name, level_shape, np.dtype(np.uint8), job.settings, label=True
            )
            writer.write(0, level)
            writer.close()
        _write_group(
            g,
            {
                "ome": {
                    "version": "0.5",
                    "image-label": {
                        "version": "0.5",
                        "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
                        "source": {"image": "../../"},
                    },
                    "multiscales": [multiscale_block(f"{case}/{kind}", ref)],
                }
            },
        )
        rows.append(
            {
                "patient_id": case,
                "kind": kind,
                "phase": None,
                "array": f"labels/{kind}/0",
                **geometry_row(infos[kind]),
                "dtype": "uint8",
                "acquisition_time_s": None,
                "checksum": voxel_checksum(m),
                "mean": None,
                "std": None,
                "p1": None,
                "p99": None,
            }
        )
    _write_group(labels, {"ome": {"version": "0.5", "labels": label_names}})

    features: dict[str, Any] = {}
    geo = (ref.spacing_xyz, ref.origin_xyz, ref.direction)
    features.update(mask_features(expert, *geo))
    features.update(mask_features(mask_arrays.get("automatic"), *geo, prefix="auto_"))
    features["auto_expert_dice"] = dice(expert, mask_arrays.get("automatic"))
    features["enhancement_ratio"] = (
        enhancement_ratio(tumour_means[1], tumour_means[0]) if len(tumour_means) == 2 else None
    )
    features.update(kinetics.features())
    features.update(shape_features(expert, ref.spacing_xyz))
    for note in kinetics.notes:
        result.problems.append(
            _problem(Severity.NOTE, case, None, "kinetics", f"case {case}: {note}")
        )
    for f in job.files:
        if f.role not in sha:  # a mask left out before it was read (e.g. its geometry)
            sha[f.role] = hash_file(f.path)
    gen = generation_id(job.settings, job.phase_times_s, sha)
    block = {
        "space": "LPS",
        "spacing_xyz": list(ref.spacing_xyz),
        "origin_xyz": list(ref.origin_xyz),
        "direction": list(ref.direction),
        "orientation": ref.orientation,
        "phase_times_s": list(job.phase_times_s) if job.phase_times_s is not None else None,
        "shape_zyx": list(ref.shape_zyx),
        "dtype": str(dtype),
        "patient_id": case,
        "generation": gen,
        "source": {
            "files": [
                {
                    "role": f.role,
                    "path": f.rel,
                    "size": f.size,
                    "mtime_ns": f.mtime_ns,
                    "sha256": sha.get(f.role),
                }
                for f in job.files
            ],
            "settings": job.settings.byte_settings(),
        },
        "volumes": rows,
        "features": features,
        "problems": [p.model_dump(mode="json") for p in result.problems],
        # Written last: a generation without it is unfinished and is never read.
        "complete": True,
    }
    _check_json(block)
    attrs: dict[str, Any] = {
        "ome": {"version": "0.5", "multiscales": [multiscale_block(case, ref)]},
        "mamamia": block,
    }
    _write_group(tmp, attrs)
    final = case_dir / f"{gen}.zarr"
    refusal = publish_refusal(job.catalog_root)
    if refusal is not None:
        result.problems.append(
            _problem(Severity.ERROR, case, None, "lock", f"case {case}: {refusal}")
        )
        raise _CaseFailed()
    try:
        os.rename(tmp, final)
    except OSError:
        # Another run finished the same content first; it is identical, so keep that one.
        if finished_generation(final) is None:
            raise
    result.generation = gen
    result.features = features
    result.volumes = [
        {
            **{k: v for k, v in r.items() if k != "array"},
            "zarr_path": f"{result.zarr_dir}/{r['array']}",
        }
        for r in rows
    ]


def _check_json(block: dict[str, Any]) -> None:
    """NaN must never reach the catalog (JSON would carry it as a non-standard token)."""

    def walk(v: Any) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("non-finite number in generation attributes")
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(block)
