"""Counters as Druid's report shows them (spec §4.5): per stage, per worker, by name."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChannelCounter:
    """``channel`` counter: arrays indexed by partition number (external input uses 0)."""

    rows: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    files: list[int] | None = None
    total_files: list[int] | None = None

    def add(self, partition: int, rows: int, nbytes: int, frames: int = 1) -> None:
        for arr in (self.rows, self.bytes, self.frames):
            while len(arr) <= partition:
                arr.append(0)
        self.rows[partition] += rows
        self.bytes[partition] += nbytes
        self.frames[partition] += frames

    def add_file(self, total: int) -> None:
        self.files = [(self.files or [0])[0] + 1]
        self.total_files = [total]

    def to_json(self) -> dict:
        out: dict = {"type": "channel"}
        if self.rows:
            out["rows"] = list(self.rows)
        if self.bytes:
            out["bytes"] = list(self.bytes)
        if any(self.frames):  # external input has no frames; Druid leaves the field out
            out["frames"] = list(self.frames)
        if self.files is not None:
            out["files"] = list(self.files)
            out["totalFiles"] = list(self.total_files)
        return out


def sort_progress(total_levels: int, level_batches: list[int], merged: list[int], ultimate: int) -> dict:
    """``sortProgress``: mergers per level, how many are done, and the digest (spec §5.8)."""
    digest = sum(m / t for m, t in zip(merged, level_batches) if t > 0) / total_levels if total_levels > 0 else None
    out = {"type": "sortProgress", "totalMergingLevels": total_levels,
           "levelToTotalBatches": {str(i): n for i, n in enumerate(level_batches)},
           "levelToMergedBatches": {str(i): n for i, n in enumerate(merged)},
           "totalMergersForUltimateLevel": ultimate}
    if digest is not None:
        out["progressDigest"] = 1.0 if abs(digest - 1.0) < 1e-6 else round(digest, 6)
    return out


def segment_progress(processed: int, persisted: int, merged: int, pushed: int) -> dict:
    return {"type": "segmentGenerationProgress", "rowsProcessed": processed, "rowsPersisted": persisted,
            "rowsMerged": merged, "rowsPushed": pushed}
