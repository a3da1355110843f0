"""TensorStore, a Zarr v3 reader written independently of ours, reads every array of a format-1
and a format-2 catalog (the ``zarr3`` driver on a ``file`` kvstore) to the same voxels as
``mamamia.open``: images, both masks and the preview level, whole and in boxes, and it checks the
crc32c of a format-2 inner chunk as our reader does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts

import mamamia
from mamamia_ingest import ingest


@pytest.fixture(scope="module")
def catalogs(phantom_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The phantom ingested with each explicit ``format_version`` (never the default)."""
    made = {}
    for version in (1, 2):
        out = tmp_path_factory.mktemp(f"tensorstore-format{version}") / "catalog"
        report = ingest(phantom_raw_dir, out, jobs=2, progress=False, format_version=version)
        assert report.exit_code == 0, report.summary()
        assert json.loads((out / "catalog.json").read_bytes())["format_version"] == version
        made[version] = out
    return made


def _arrays(catalog: Path) -> list[str]:
    """Every Zarr array under volumes/, catalog-relative."""
    found = []
    for meta in sorted((catalog / "volumes").rglob("zarr.json")):
        if json.loads(meta.read_bytes())["node_type"] == "array":
            found.append(meta.parent.relative_to(catalog).as_posix())
    return found


def _open(catalog: Path, relative: str) -> Any:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(catalog / relative)}}
    return ts.open(spec, open=True, read=True).result()


@pytest.mark.parametrize("version", [1, 2])
def test_every_array_reads_the_same_voxels_as_mamamia(
    catalogs: dict[int, Path], version: int
) -> None:
    catalog = catalogs[version]
    cat = mamamia.open(catalog)
    arrays = _arrays(catalog)
    # Images, both masks, each at full resolution and at the preview level, for every case.
    cases = len(cat.cohort("true"))
    for tail in ("zarr/0", "zarr/1", "expert/0", "expert/1", "automatic/0", "automatic/1"):
        assert sum(a.endswith(tail) for a in arrays) == cases, (tail, arrays)
    for relative in arrays:
        store = _open(catalog, relative)
        codecs = [c["name"] for c in store.spec().to_json()["metadata"]["codecs"]]
        assert (codecs == ["sharding_indexed"]) == (version == 2), (relative, codecs)
        theirs = store.read().result()
        ours = np.asarray(cat.open_array(relative)[...])
        assert theirs.dtype == ours.dtype, relative
        assert theirs.shape == ours.shape, relative
        assert np.array_equal(theirs, ours), relative
        assert np.count_nonzero(theirs) > 0, relative  # not two fill values that agree


@pytest.mark.parametrize("version", [1, 2])
def test_volumes_and_boxes_match_the_public_reader(catalogs: dict[int, Path], version: int) -> None:
    catalog = catalogs[version]
    cat = mamamia.open(catalog)
    for case_id in cat.cohort("has_expert").case_ids:
        case = cat.case(case_id)
        paths = {
            row["kind"]: row["zarr_path"]
            for row in cat.sql(
                "SELECT DISTINCT kind, zarr_path FROM volumes WHERE patient_id = $id", id=case_id
            ).to_pylist()
        }
        image = _open(catalog, paths["image"])
        assert np.array_equal(image.read().result(), np.asarray(case.image)), case_id
        for kind in ("expert", "automatic"):
            mask = _open(catalog, paths[kind]).read().result()
            assert np.array_equal(mask.reshape(case.mask(kind).shape), np.asarray(case.mask(kind)))
        # A box that starts and ends inside inner chunks: partial reads through the shard index.
        t, z, y, x = image.shape
        box = (slice(t - 1, t), slice(z // 3, z - 1), slice(3, y // 2 + 5), slice(x // 4, x - 2))
        assert np.array_equal(image[box].read().result(), case.image[box]), case_id


def _first_inner_chunk(array: Path) -> tuple[Path, int, int]:
    """The shard of a format-2 array and the (offset, nbytes) of its first inner chunk, read from
    the index at the shard's end (uint64 pairs, then the index's own crc32c)."""
    meta = json.loads((array / "zarr.json").read_bytes())
    inner = meta["codecs"][0]["configuration"]["chunk_shape"]
    count = int(np.prod([-(-n // c) for n, c in zip(meta["shape"], inner, strict=True)]))
    shard = array / "c" / "0" / "0" / "0" / "0"
    index = np.frombuffer(shard.read_bytes()[-4 - 16 * count : -4], dtype="<u8").reshape(-1, 2)
    return shard, int(index[0, 0]), int(index[0, 1])


def test_tensorstore_checks_our_crc32c_of_inner_chunks(
    catalogs: dict[int, Path], tmp_path: Path
) -> None:
    """Our crc32c per inner chunk is the standard one: TensorStore accepts it intact, and
    refuses an inner chunk whose checksum or compressed bytes were changed, while another
    phase's chunks (other byte ranges of the same file) still read."""
    catalog = catalogs[2]
    relative = next(a for a in _arrays(catalog) if a.endswith("zarr/0"))
    copy = tmp_path / "array"
    shutil.copytree(catalog / relative, copy)
    good = _open(tmp_path, "array").read().result()
    shard, offset, nbytes = _first_inner_chunk(copy)
    intact = shard.read_bytes()
    # The checksum is the inner chunk's last 4 bytes: the voxels are intact, the digest is not.
    damaged = bytearray(intact)
    damaged[offset + nbytes - 1] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="Digest mismatch"):
        _open(tmp_path, "array")[0, :1, :1, :1].read().result()
    # A flipped bit of the compressed bytes (TensorStore's blosc decoder may fail first).
    damaged = bytearray(intact)
    damaged[offset + nbytes // 2] ^= 0x01
    shard.write_bytes(bytes(damaged))
    store = _open(tmp_path, "array")
    with pytest.raises(ValueError, match="shard entry"):
        store[0, :1, :1, :1].read().result()
    assert store.shape[0] > 1
    assert np.array_equal(store[1].read().result(), good[1])
