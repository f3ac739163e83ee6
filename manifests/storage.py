"""A dataset folder on any fsspec filesystem, with atomic publication of files."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

STAGING = ".staging"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Storage:
    """Names are relative to the dataset root; ``url`` is a path or any fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.path(name) if name else self.root)

    def listdir(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return sorted(Path(p).name for p in self.fs.ls(self.root, detail=False))

    def makedirs(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.path(name))

    def read_range(self, name: str, offset: int, size: int) -> bytes:
        return self.fs.cat_file(self.path(name), start=offset, end=offset + size)

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def sha256(self, name: str) -> str:
        if self.is_local:
            return sha256_file(self.path(name))
        digest = hashlib.sha256()
        with self.fs.open(self.path(name), "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def remove(self, name: str) -> None:
        if self.fs.exists(self.path(name)):
            self.fs.rm(self.path(name), recursive=True)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write under a temporary name, then rename: readers see the old or the new file, never half."""
        tmp = f"{name}.tmp-{uuid.uuid4().hex}"
        if self.is_local:
            self.makedirs()
            with open(self.path(tmp), "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(self.path(tmp), self.path(name))
        else:
            self.fs.pipe_file(self.path(tmp), data)
            self.fs.mv(self.path(tmp), self.path(name))

    def staging_dir(self) -> str:
        """A private local folder to build files in before ``publish`` moves them into place."""
        if self.is_local:
            base = self.path(STAGING)
            os.makedirs(base, exist_ok=True)
            return tempfile.mkdtemp(dir=base)
        return tempfile.mkdtemp(prefix="got-data-")

    def publish(self, local_path: str, name: str) -> None:
        """Move a finished local file to ``name`` atomically (rename on local disks)."""
        if self.is_local:
            with open(local_path, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(local_path, self.path(name))
        else:
            tmp = f"{name}.tmp-{uuid.uuid4().hex}"
            self.fs.put_file(local_path, self.path(tmp))
            self.fs.mv(self.path(tmp), self.path(name))
            os.unlink(local_path)

    def clean_temporaries(self) -> list[str]:
        """Remove what killed runs left behind: the staging folder and ``*.tmp-*`` files."""
        removed = []
        for name in self.listdir():
            if name == STAGING or ".tmp-" in name:
                self.remove(name)
                removed.append(name)
        return removed


def discard_local(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
