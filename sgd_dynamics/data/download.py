"""Downloads of the real data sets through pooch, checked against known hashes."""

from __future__ import annotations

from pathlib import Path

from sgd_dynamics.utils.errors import SetupError


def fetch(url: str, md5: str, folder: Path, fname: str, untar: bool = False) -> None:
    """Download `url` to ``folder/fname`` (skipped if present with the right hash); untar it
    into `folder` if asked. Raises `SetupError` when the download fails."""
    import pooch

    folder.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(
            url=url,
            known_hash=f"md5:{md5}",
            fname=fname,
            path=folder,
            progressbar=False,
            processor=pooch.Untar(extract_dir=".") if untar else None,
        )
    except Exception as exc:
        raise SetupError(
            f"could not download {url} to {folder}: {exc}\n"
            f"  put the file(s) there by hand, or try again with network access"
        ) from None
