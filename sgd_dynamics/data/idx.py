"""Reader for the IDX file format of MNIST and Fashion-MNIST (gzipped or not)."""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

# IDX type code -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into an array of its stored shape and type (native byte order).

    Format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions k, k big-endian uint32 sizes, then
    the data in row-major order, big-endian. A gzip-compressed file (detected by its magic
    bytes, whatever its name) is decompressed first.

    Raises:
        ValueError: naming `path`, for a corrupt gzip stream, a bad magic number or a size
            that does not match the header.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape)) if shape else 1
    if len(data) != header + count * dtype.itemsize:
        raise ValueError(
            f"{path}: IDX header says shape {shape} of {dtype}, which does not match the file size"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = False) -> None:
    """Write `array` (uint8, int8, int16, int32, float32 or float64) as an IDX file."""
    codes = {v.newbyteorder("=").str[1:]: k for k, v in _IDX_DTYPES.items()}
    key = np.dtype(array.dtype).newbyteorder("=").str[1:]
    if key not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if compress else payload)
