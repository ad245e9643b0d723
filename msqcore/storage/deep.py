"""Deep storage: where published segment files live.

``DeepStorage`` is the interface (S3-compatible storage implements it later);
``LocalDeepStorage`` keeps files under the data dir, with Druid's ``local`` loadSpec.
"""
from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod


class DeepStorage(ABC):
    @property
    @abstractmethod
    def spec(self) -> dict:
        """A picklable description that ``deep_storage_from_spec`` turns back into this storage."""

    @abstractmethod
    def load_spec(self, datasource: str, interval: str, version: str, partition_num: int) -> dict:
        """Where ``push`` puts (or put) that segment."""

    @abstractmethod
    def push(self, local_file: str, datasource: str, interval: str, version: str, partition_num: int) -> dict:
        """Store a finished segment file; returns its loadSpec."""

    @abstractmethod
    def local_path(self, load_spec: dict) -> str:
        """A local file to read the segment from (downloading it if needed)."""

    @abstractmethod
    def delete(self, load_spec: dict) -> None: ...

    @abstractmethod
    def orphans(self, owned: list[dict]) -> list[dict]:
        """loadSpecs of stored segment files that no ``owned`` loadSpec names (pushed by a task
        that died before publishing)."""


class LocalDeepStorage(DeepStorage):
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    @property
    def spec(self) -> dict:
        return {"type": "local", "root": self.root}

    def load_spec(self, datasource, interval, version, partition_num):
        path = os.path.join(self.root, datasource, interval.replace("/", "_"), version.replace(":", "_"),
                            str(partition_num), "index.seg")
        return {"type": "local", "path": path}

    def push(self, local_file, datasource, interval, version, partition_num):
        load_spec = self.load_spec(datasource, interval, version, partition_num)
        target = load_spec["path"]
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + ".tmp"
        shutil.copyfile(local_file, tmp)
        os.replace(tmp, target)
        return load_spec

    def local_path(self, load_spec):
        return load_spec["path"]

    def delete(self, load_spec):
        path = load_spec.get("path")
        if path and path.startswith(self.root + os.sep) and os.path.exists(path):
            os.remove(path)
            # prune empty directories up to (never including) the root
            directory = os.path.dirname(path)
            while directory != self.root and directory.startswith(self.root + os.sep):
                try:
                    os.rmdir(directory)
                except OSError:
                    break
                directory = os.path.dirname(directory)


    def orphans(self, owned):
        names = {spec.get("path") for spec in owned}
        found = []
        for directory, _, files in os.walk(self.root):
            found += [os.path.join(directory, f) for f in files if f == "index.seg"]
        return [{"type": "local", "path": p} for p in sorted(found) if p not in names]


def deep_storage_from_spec(spec: dict) -> DeepStorage:
    """Rebuild a deep storage from its picklable description (sent to worker processes)."""
    if spec.get("type") == "local":
        return LocalDeepStorage(spec["root"])
    raise ValueError(f"Unknown deep storage type [{spec.get('type')}]")
