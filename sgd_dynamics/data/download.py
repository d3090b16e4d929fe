"""Downloads of the real data sets through pooch, checked against known hashes."""

from __future__ import annotations

import tarfile
from pathlib import Path

from sgd_dynamics.utils.errors import SetupError


def fetch(url: str, md5: str, folder: Path, fname: str, untar: bool = False) -> None:
    """Download `url` to ``folder/fname`` (skipped if present with the right hash); untar it
    into `folder` if asked, refusing members that would land outside it (tarfile's "data"
    filter). Raises `SetupError` when the download or the extraction fails."""
    import pooch

    folder.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(
            url=url,
            known_hash=f"md5:{md5}",
            fname=fname,
            path=folder,
            progressbar=False,
        )
        if untar:
            with tarfile.open(folder / fname) as archive:
                archive.extractall(folder, filter="data")
    except Exception as exc:
        raise SetupError(
            f"could not download {url} to {folder}: {exc}\n"
            f"  put the file(s) there by hand, or try again with network access"
        ) from None
