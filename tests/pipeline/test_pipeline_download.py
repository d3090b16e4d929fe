"""Downloads: `fetch` (pooch) and the MNIST and CIFAR-10 callers, end to end against a local
HTTP server serving files written in the real formats; md5 and HTTP failures."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_helpers import write_cifar_files, write_mnist_files

import sgd_dynamics.data.cifar10 as cifar10
from sgd_dynamics.data.mnist import IDX_FILES, MNIST_SOURCE
from sgd_dynamics.lightning import CIFAR10DataModule, MNISTDataModule
from sgd_dynamics.utils import SetupError

HAND_REMEDY = "put the file(s) there by hand"


@dataclasses.dataclass
class Served:
    """A folder served over HTTP at `url` (ends with "/"); `requests` lists the paths asked."""

    folder: Path
    url: str
    requests: list[str]


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files like `SimpleHTTPRequestHandler`, recording paths instead of logging."""

    def __init__(self, *args, requests: list[str], **kwargs) -> None:
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``tmp_path/served`` on http://127.0.0.1:<free port>/, in a daemon thread."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []
    handler = functools.partial(QuietHandler, directory=str(folder), requests=requests)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield Served(folder, f"http://127.0.0.1:{server.server_address[1]}/", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def md5_of(path: Path) -> str:
    """Hex md5 of a file's bytes."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def mnist_from(url: str, md5: dict[str, str]) -> type[MNISTDataModule]:
    """`MNISTDataModule` whose source is `url` with hashes `md5` (file name -> hex md5)."""
    source = dataclasses.replace(MNIST_SOURCE, base_url=url, md5=md5)
    return type("ServedMNIST", (MNISTDataModule,), {"source": source})


def gz_names() -> list[str]:
    """The four gzipped IDX file names, as published."""
    return [f"{name}.gz" for name in IDX_FILES.values()]


def test_mnist_download_fetches_the_four_files_and_reads_them(served: Served, tmp_path: Path):
    arrays = write_mnist_files(served.folder, n_train=12, n_test=5, gz=True)
    module = mnist_from(served.url, {n: md5_of(served.folder / n) for n in gz_names()})
    root = tmp_path / "root"
    dm = module(root=root, batch_size=4, download=True)
    x, y = dm.spectral_samples(None)
    assert sorted(p.name for p in root.iterdir()) == sorted(gz_names())
    for name in gz_names():
        assert (root / name).read_bytes() == (served.folder / name).read_bytes()
    assert sorted(served.requests) == sorted(f"/{n}" for n in gz_names())
    # the same module reading the served folder directly, no download
    direct = MNISTDataModule(root=served.folder, batch_size=4)
    x_direct, y_direct = direct.spectral_samples(None)
    assert torch.equal(x, x_direct) and torch.equal(y, y_direct)
    assert np.array_equal(y.numpy(), arrays["train-labels-idx1-ubyte"])
    xt, yt = next(iter(dm.val_dataloader()))
    xt_direct, yt_direct = next(iter(direct.val_dataloader()))
    assert torch.equal(xt, xt_direct) and torch.equal(yt, yt_direct)
    assert np.array_equal(yt.numpy(), arrays["t10k-labels-idx1-ubyte"])
    # files already present with the right hash are not fetched again
    module(root=root, batch_size=4, download=True).load()
    assert len(served.requests) == 4


def test_cifar10_download_fetches_and_extracts_the_archive(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    original = tmp_path / "original"
    batches = write_cifar_files(original, n_per_batch=3)
    archive = served.folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(original / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar10, "CIFAR10_URL", served.url + archive.name)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    root = tmp_path / "root"
    dm = CIFAR10DataModule(root=root, batch_size=4, download=True)
    x, y = dm.spectral_samples(None)
    assert served.requests == [f"/{archive.name}"]
    assert (root / archive.name).read_bytes() == archive.read_bytes()
    extracted = root / "cifar-10-batches-py"
    assert sorted(p.name for p in extracted.iterdir()) == sorted(batches)
    direct = CIFAR10DataModule(root=original, batch_size=4)
    x_direct, y_direct = direct.spectral_samples(None)
    assert (dm.n_train, dm.n_test) == (15, 3)
    assert torch.equal(x, x_direct) and torch.equal(y, y_direct)
    labels = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert np.array_equal(y.numpy(), labels)
    xt, yt = next(iter(dm.val_dataloader()))
    xt_direct, yt_direct = next(iter(direct.val_dataloader()))
    assert torch.equal(xt, xt_direct) and torch.equal(yt, yt_direct)


def test_download_with_wrong_md5_raises_setup_error(served: Served, tmp_path: Path):
    """The hash check fails: `SetupError` naming the URL, and no file is left in root."""
    write_mnist_files(served.folder, n_train=4, n_test=2, gz=True)
    md5 = {n: md5_of(served.folder / n) for n in gz_names()}
    first = gz_names()[0]
    md5[first] = "0" * 32
    root = tmp_path / "root"
    dm = mnist_from(served.url, md5)(root=root, batch_size=2, download=True)
    url = served.url + first
    with pytest.raises(SetupError, match=rf"could not download {re.escape(url)} to .*") as info:
        dm.load()
    assert HAND_REMEDY in str(info.value)
    assert served.requests == [f"/{first}"]
    assert list(root.iterdir()) == []


def test_download_of_missing_url_raises_setup_error(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The server answers 404: `SetupError` naming the URL and the manual remedy."""
    url = served.url + "cifar-10-python.tar.gz"
    monkeypatch.setattr(cifar10, "CIFAR10_URL", url)
    root = tmp_path / "root"
    dm = CIFAR10DataModule(root=root, batch_size=2, download=True)
    with pytest.raises(SetupError, match=re.escape(url) + r".*404.*\n.*" + re.escape(HAND_REMEDY)):
        dm.load()
    assert served.requests == ["/cifar-10-python.tar.gz"]
    assert list(root.iterdir()) == []


def test_archive_member_outside_the_folder_is_refused(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A tarball whose member would land outside the data folder: `SetupError`, nothing written
    outside (tarfile's "data" filter)."""
    payload = tmp_path / "payload.txt"
    payload.write_text("outside")
    archive = served.folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="../escaped.txt")
    monkeypatch.setattr(cifar10, "CIFAR10_URL", served.url + archive.name)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5_of(archive))
    root = tmp_path / "data" / "root"
    dm = CIFAR10DataModule(root=root, batch_size=2, download=True)
    with pytest.raises(SetupError, match="outside the destination"):
        dm.load()
    assert not (root.parent / "escaped.txt").exists()
