"""Read an offline wandb run's ``run-<id>.wandb`` file back: what a run logged, without a
server (the figure of the dashboard in the README and the tests use it).

The file is a LevelDB-style log (what ``wandb sync`` uploads): a 7-byte header (``:W&B``,
magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) |
type (1) | data``, where type 1 is a whole record and 2, 3, 4 the first, middle and last
pieces of one; a block tail shorter than a chunk header is padding. Each record is a
``wandb_internal_pb2.Record`` protobuf. A file whose writer was killed may end inside a
record: the records before it are read, the incomplete tail is ignored.

A run folder holds one such file per training segment (``wandb/offline-run-*/`` offline,
``wandb/run-*/`` online): `run_files` lists them in the order ``wandb sync`` uploads them (by
the start time in their run record).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

from sgd_dynamics.utils.safe_files import parse_json

BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def run_file(run_dir: str | os.PathLike) -> Path:
    """The ``.wandb`` file of the (single) offline run under ``RUN_DIR/wandb/``."""
    found = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{run_dir}: expected one wandb/offline-run-*/run-*.wandb, found {len(found)}"
        )
    return found[0]


def run_record(path: str | os.PathLike) -> wandb_internal_pb2.RunRecord | None:
    """The run record of a ``.wandb`` file (run id, display name, start time), or None."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    return None


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every ``.wandb`` file under ``RUN_DIR/wandb/`` (offline and online segments), earliest
    start first (the start time of its run record; the folder name breaks ties)."""
    found = sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"))

    def start(path: Path) -> tuple[float, str]:
        run = run_record(path)
        seconds = run.start_time.ToNanoseconds() / 1e9 if run is not None else float("inf")
        return seconds, path.parent.name

    return sorted(found, key=start)


def records(path: str | os.PathLike) -> list[wandb_internal_pb2.Record]:
    """Every record of a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path}: not a wandb run file (header {ident!r}, {magic:#x}, {version})")
    out, pending, offset = [], b"", 7
    while offset + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < CHUNK_HEADER:
            offset += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK_HEADER])
        if offset + CHUNK_HEADER + length > len(data):  # the writer stopped inside this chunk
            break
        chunk = data[offset + CHUNK_HEADER : offset + CHUNK_HEADER + length]
        offset += CHUNK_HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pending)
            except DecodeError:  # a damaged record: the file is not read further
                break
            out.append(record)
            pending = b""
    return out


def history_rows(path: str | os.PathLike) -> list[dict]:
    """Every ``run.log`` call as a dict: key -> decoded JSON value (a histogram is a dict with
    ``bins`` and ``values``; an image or table a dict with its ``path`` under ``files/``)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row: dict = {}
        for item in record.history.item:
            keys = [item.key] if item.key else list(item.nested_key)
            node = row
            for part in keys[:-1]:
                node = node.setdefault(part, {})
            node[keys[-1]] = parse_json(item.value_json, f"{path}: {item.key}")
        rows.append(row)
    return rows


def artifacts(path: str | os.PathLike) -> list[wandb_internal_pb2.ArtifactRecord]:
    """The artifact records (name, type, manifest with each file's path and md5 digest)."""
    return [r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"]
