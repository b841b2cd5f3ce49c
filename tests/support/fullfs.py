"""A filesystem with a capacity, for "disk full" without root: fsspec's in-memory filesystem
whose writes fail with ``OSError(ENOSPC)`` -- what the OS says on a full disk -- once the
bytes stored would exceed ``capacity``. Registered as ``fullmem://``."""

from __future__ import annotations

import errno
import os

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem


class _CappedFile(MemoryFile):
    def write(self, data):
        fs = self.fs
        others = sum(f.size for p, f in fs.store.items() if p != self.path)
        if others + max(self.tell() + len(data), self.size) > fs.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        return super().write(data)


class FullMemoryFileSystem(MemoryFileSystem):
    protocol = ("fullmem",)
    root_marker = "/"
    store: dict = {}  # its own, apart from memory://
    pseudo_dirs = [""]
    capacity = 1 << 60

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("fullmem://"))

    def _open(self, path, mode="rb", **kwargs):
        if mode in {"wb", "w+b", "xb", "x+b"}:
            path = self._strip_protocol(path)
            f = _CappedFile(self, path)
            f.commit()
            return f
        return super()._open(path, mode, **kwargs)

    @classmethod
    def reset(cls, capacity: int) -> None:
        cls.store.clear()
        cls.pseudo_dirs[:] = [""]
        cls.capacity = capacity


fsspec.register_implementation("fullmem", FullMemoryFileSystem, clobber=True)
