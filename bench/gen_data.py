"""A deterministic, wikipedia-edits-like data set for the ingestion benchmarks.

The columns are those of Druid's ``wikipedia`` example (``timestamp`` as ISO-8601 text,
``channel``, ``page``, ``user``, geo columns, booleans, counts, ``diffUrl``, ``flags``).
Everything is vectorized with numpy and pyarrow, so a million rows take seconds.

    python -m bench.gen_data --rows 1000000 --seed 42 --files 4 --out var/bench/data

writes ``<out>/wiki-<rows>-<seed>/{json,csv,parquet}/part-NNN.<ext>``: each format holds
the same rows, split into ``--files`` parts (msqcore gives one file to one worker, so a
single file would leave ``maxNumTasks`` 3 with one idle worker).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

#: 2016-06-27T00:00:00Z, the day of Druid's wikipedia sample; the data spans 7 days.
START_MILLIS = 1_466_985_600_000
DAYS = 7

#: (name, EXTERN type) in Druid's wikipedia example order; booleans are EXTERN strings there.
COLUMNS: list[tuple[str, str]] = [
    ("timestamp", "string"), ("channel", "string"), ("page", "string"), ("user", "string"),
    ("comment", "string"), ("countryName", "string"), ("countryIsoCode", "string"),
    ("cityName", "string"), ("regionName", "string"), ("regionIsoCode", "string"),
    ("namespace", "string"), ("metroCode", "long"), ("isRobot", "string"), ("isNew", "string"),
    ("isMinor", "string"), ("isAnonymous", "string"), ("isUnpatrolled", "string"),
    ("added", "long"), ("deleted", "long"), ("delta", "long"), ("commentLength", "long"),
    ("deltaBucket", "long"), ("diffUrl", "string"), ("flags", "string"),
]
BOOLEANS = ("isRobot", "isNew", "isMinor", "isAnonymous", "isUnpatrolled")
FORMATS = ("json", "csv", "parquet")

_LANGS = ("en de fr ja ru es it zh pt pl nl sv uk vi ar fa ca ko he no fi id cs hu ro tr sr "
          "da bg el ms eo lt sk sl et hr hi th gl kk eu az bs hy ka ta ur bn ce").split()
_WORDS = ("River Station Church School Battle List Album County House Park Lake Island Bridge Museum "
          "University Festival Club Railway Castle Mountain Valley Airport Hospital Street Tower "
          "Canal Forest Theatre Library Palace Garden Harbour Temple Market Stadium Highway").split()
_NAMESPACES = ("Main", "User", "Talk", "User talk", "Wikipedia", "Wikipedia talk", "File", "File talk",
               "Template", "Template talk", "Category", "Category talk", "Help", "Portal", "Draft",
               "Module", "MediaWiki", "Book", "TimedText", "Gadget")
_FLAGS = ("", "M", "B", "N", "!", "MB", "NB", "!N", "!M", "MN")
_COMMENT_STEMS = (
    "/* {w} */ fixed typo", "Reverted edits by {u} to last version", "added reference",
    "copyedit, grammar", "update infobox, population", "/* History */ expanded section",
    'Removed "unsourced" claim', "Bot: Migrating interwiki links", "Résumé des modifications",
    "spelling: colour → color", "rm spam link", "tagging for {w}, see talk", "日本語の修正",
    "Undid revision by {u}", "category {w}, sorting", "",
)


@dataclass(frozen=True)
class DataSet:
    root: Path
    rows: int
    seed: int
    files: int

    def dir(self, fmt: str) -> Path:
        return self.root / fmt

    def paths(self, fmt: str) -> list[Path]:
        ext = {"json": "json", "csv": "csv", "parquet": "parquet"}[fmt]
        return sorted(self.dir(fmt).glob(f"part-*.{ext}"))

    def glob(self, fmt: str) -> str:
        return str(self.dir(fmt) / f"part-*.{fmt}")

    @property
    def complete(self) -> bool:
        marker = self.root / "_SUCCESS"
        if not marker.exists():
            return False
        meta = json.loads(marker.read_text())
        return meta.get("rows") == self.rows and meta.get("files") == self.files


def dataset(out: str | os.PathLike, rows: int, seed: int, files: int) -> DataSet:
    return DataSet(Path(out) / f"wiki-{rows}-{seed}-{files}", rows, seed, files)


def _skewed(rng: np.random.Generator, n: int, size: int, a: float = 1.3) -> np.ndarray:
    """``n`` indices in [0, size) with a Zipf-like skew (index 0 is the most frequent)."""
    cdf = np.cumsum(1.0 / np.arange(1, size + 1) ** a)
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), size - 1)


def _pick(values, idx: np.ndarray) -> pa.Array:
    """``values[idx]`` as an Arrow string array (a take from a small vocabulary)."""
    return pa.array(list(values), pa.string()).take(pa.array(idx))


def _vocab(words, word_idx: np.ndarray, ids: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(_pick(words, word_idx), pc.cast(pa.array(ids), pa.string()), " ")


_REGIONS_PER_COUNTRY = 25
_CITIES_PER_REGION = 4


def _geo_names():
    """80 countries, 2,000 regions and 8,000 cities that nest: city → region → country."""
    countries = ["United States", "United Kingdom", "Germany", "France", "Japan", "India", "Canada", "Australia",
                 "Italy", "Spain", "Brazil", "Russia", "Mexico", "Netherlands", "Sweden", "Poland"]
    countries += [f"Country {i:02d}" for i in range(80 - len(countries))]
    iso = ["US"] + [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(1, len(countries))]
    regions = [f"{c} Region {r}" for c in countries for r in range(_REGIONS_PER_COUNTRY)]
    region_iso = [f"{code}-{r:02d}" for code in iso for r in range(_REGIONS_PER_COUNTRY)]
    cities = [f"City {k} of {region}" for region in regions for k in range(_CITIES_PER_REGION)]
    return countries, iso, regions, region_iso, cities


def generate_table(rows: int, seed: int = 42) -> pa.Table:
    """The data set as one Arrow table, in (random) timestamp order."""
    rng = np.random.default_rng(seed)
    n = rows
    millis = START_MILLIS + rng.integers(0, DAYS * 86_400_000, n, dtype=np.int64)
    # "2016-06-27 14:59:38.976" → "2016-06-27T14:59:38.976Z" (pc.strftime is 40x slower)
    text = pc.cast(pa.array(millis, pa.timestamp("ms")), pa.string())
    timestamp = pc.binary_join_element_wise(pc.replace_substring(text, " ", "T"), "Z", "")

    lang = _skewed(rng, n, len(_LANGS), 1.5)
    channel = _pick([f"#{code}.wikipedia" for code in _LANGS], lang)

    # page and user: a hot set plus a long tail over an id space of ``rows`` (≈ half distinct).
    def names(words, hot: int) -> pa.Array:
        ids = np.where(rng.random(n) < 0.35, _skewed(rng, n, hot, 1.1), rng.integers(0, max(n, 1), n))
        return _vocab(words, ids % len(words), ids)

    page = names(_WORDS, 20_000)
    anonymous = rng.random(n) < 0.25
    user_names = names(["Editor", "Wikiuser", "Reader", "Bot", "Admin"], 5_000)
    octets = [pc.cast(pa.array(rng.integers(1, 255, n)), pa.string()) for _ in range(4)]
    ip = pc.binary_join_element_wise(*octets, ".")
    user = pc.if_else(pa.array(anonymous), ip, user_names)

    comment = _pick(_COMMENT_STEMS, _skewed(rng, n, len(_COMMENT_STEMS), 1.4))
    comment = pc.replace_substring(comment, "{w}", "section")
    comment = pc.replace_substring(comment, "{u}", "Wikiuser")
    has_tail = pa.array(rng.random(n) < 0.5)
    tail = pc.binary_join_element_wise(comment, pc.cast(pa.array(rng.integers(0, 10_000, n)), pa.string()), " #")
    comment = pc.if_else(has_tail, tail, comment)

    countries, iso, regions, region_iso, cities = _geo_names()
    country = _skewed(rng, n, len(countries), 1.1)
    region = country * _REGIONS_PER_COUNTRY + _skewed(rng, n, _REGIONS_PER_COUNTRY, 0.8)
    city = region * _CITIES_PER_REGION + _skewed(rng, n, _CITIES_PER_REGION, 2.0)
    mask = pa.array(~anonymous)  # Druid's sample has geo only for anonymous (IP) edits

    def geo(values, idx: np.ndarray) -> pa.Array:
        return pc.if_else(mask, pa.scalar(None, pa.string()), _pick(values, idx))

    metro = np.where(country == 0, 500 + city % 300, 0)
    metro_code = pa.array(metro, pa.int64(), mask=(~anonymous) | (country != 0))

    namespace = _pick(_NAMESPACES, _skewed(rng, n, len(_NAMESPACES), 1.6))
    flags_col = _pick(_FLAGS, _skewed(rng, n, len(_FLAGS), 1.5))
    added = np.minimum(rng.lognormal(4.0, 2.0, n).astype(np.int64), 500_000)
    added[rng.random(n) < 0.2] = 0
    deleted = np.minimum(rng.lognormal(3.0, 2.0, n).astype(np.int64), 500_000)
    deleted[rng.random(n) < 0.6] = 0
    delta = added - deleted
    diff_ids = 700_000_000 + rng.permutation(n).astype(np.int64)
    diff_url = pc.binary_join_element_wise(
        pc.binary_join_element_wise("https://", pc.utf8_slice_codeunits(channel, 1, 3), ""),
        pc.cast(pa.array(diff_ids), pa.string()), ".wikipedia.org/w/index.php?diff=")
    booleans = {"isRobot": 0.10, "isNew": 0.08, "isMinor": 0.30, "isUnpatrolled": 0.12}

    data = {
        "timestamp": timestamp, "channel": channel, "page": page, "user": user, "comment": comment,
        "countryName": geo(countries, country), "countryIsoCode": geo(iso, country),
        "cityName": geo(cities, city), "regionName": geo(regions, region), "regionIsoCode": geo(region_iso, region),
        "namespace": namespace, "metroCode": metro_code,
        **{k: pa.array(rng.random(n) < p) for k, p in booleans.items()}, "isAnonymous": pa.array(anonymous),
        "added": pa.array(added), "deleted": pa.array(deleted), "delta": pa.array(delta),
        "commentLength": pc.cast(pc.utf8_length(comment), pa.int64()),
        "deltaBucket": pa.array(np.floor_divide(delta, 100) * 100),
        "diffUrl": diff_url, "flags": flags_col,
    }
    return pa.table({name: data[name] for name, _ in COLUMNS})


def _json_string(col: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def json_lines(table: pa.Table) -> pa.Array:
    """One JSON object per row, built column-wise (null values are written as ``null``)."""
    parts = []
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        t = col.type
        if pa.types.is_string(t):
            text = _json_string(col)
        elif pa.types.is_boolean(t):
            text = pc.if_else(col, "true", "false")
        else:
            text = pc.cast(col, pa.string())
        text = pc.fill_null(text, "null")
        parts.append(pc.binary_join_element_wise(f'"{name}":', text, ""))
    body = pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("{", body, "}\n", "")


def write(ds: DataSet, table: pa.Table, formats=FORMATS) -> None:
    bounds = np.linspace(0, table.num_rows, ds.files + 1).astype(int)
    for fmt in formats:
        ds.dir(fmt).mkdir(parents=True, exist_ok=True)
        for old in ds.dir(fmt).glob("part-*"):
            old.unlink()
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        part = table.slice(lo, hi - lo)
        if "json" in formats:
            with open(ds.dir("json") / f"part-{i:03d}.json", "wb") as f:
                f.write(_text_bytes(json_lines(part)))
        if "csv" in formats:
            pcsv.write_csv(part, ds.dir("csv") / f"part-{i:03d}.csv",
                           pcsv.WriteOptions(include_header=True, quoting_style="needed"))
        if "parquet" in formats:
            pq.write_table(part, ds.dir("parquet") / f"part-{i:03d}.parquet", compression="zstd")


def _text_bytes(lines: pa.Array) -> memoryview:
    """The concatenated values of a string array, without per-row Python objects."""
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]):int(offsets[-1])]


def write_big_json(path: str | os.PathLike, target_bytes: int, seed: int = 42, chunk_rows: int = 500_000) -> int:
    """One JSON-lines file of at least ``target_bytes``, written chunk by chunk (chunk i
    uses seed + i) so that memory stays at one chunk; returns the row count."""
    rows = 0
    with open(path, "wb") as f:
        i = 0
        while f.tell() < target_bytes:
            table = generate_table(chunk_rows, seed + i)
            f.write(_text_bytes(json_lines(table)))
            rows += table.num_rows
            i += 1
    return rows


def ensure(out: str | os.PathLike, rows: int, seed: int = 42, files: int = 4, force: bool = False,
           log=print) -> DataSet:
    """Generate the data set unless a complete copy is already there; return it."""
    ds = dataset(out, rows, seed, files)
    if ds.complete and not force:
        return ds
    t0 = time.perf_counter()
    table = generate_table(rows, seed)
    t1 = time.perf_counter()
    write(ds, table)
    t2 = time.perf_counter()
    sizes = {fmt: sum(p.stat().st_size for p in ds.paths(fmt)) for fmt in FORMATS}
    (ds.root / "_SUCCESS").write_text(json.dumps({"rows": rows, "seed": seed, "files": files, "bytes": sizes}))
    log(f"generated {rows:,} rows in {t1 - t0:.1f}s, wrote json/csv/parquet in {t2 - t1:.1f}s "
        f"({', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in sizes.items())}) → {ds.root}")
    return ds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--files", type=int, default=4, help="parts per format (default 4)")
    parser.add_argument("--out", default="var/bench/data")
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    ds = ensure(args.out, args.rows, args.seed, args.files, force=args.force)
    print(ds.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
