"""A worker with a memory probe: where its RSS goes, sampled while it runs (bench only).

    RINGTALLY_MEMPROBE_OUT=probe.jsonl python -m bench.memprobe worker --loglevel info

Runs ``ringtally worker`` (the same entry point, ``connectors.cli``) with a
daemon thread that every ``RINGTALLY_MEMPROBE_EVERY`` seconds (default 30)
appends one JSON line: RSS and anonymous memory (/proc), glibc's heap
(``mallinfo2``: bytes in use and free inside the arenas), the sum over the
worker's RocksDB databases of their memtables, block caches and table readers
(RocksDB's own properties), the number of keys they estimate, and with
``RINGTALLY_MEMPROBE_TRACEMALLOC=1`` the Python allocations that grew most
since the first snapshot (file:line). Why a separate entry point: the probe
costs CPU (tracemalloc roughly halves throughput) and must never be on in
production, so the worker's own code knows nothing of it. ``bench/soak.py
--probe`` starts the worker through it.
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

#: RocksDB properties summed over the worker's databases (bytes, except the key count);
#: the block cache's are the largest one database reports (one cache may serve them all).
ROCKSDB_PROPERTIES = (
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.size-all-mem-tables",
    "rocksdb.block-cache-usage",
    "rocksdb.block-cache-pinned-usage",
    "rocksdb.block-cache-capacity",
    "rocksdb.estimate-table-readers-mem",
    "rocksdb.estimate-num-keys",
    "rocksdb.total-sst-files-size",
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mallinfo() -> dict[str, int] | None:
    """glibc's heap: ``arena`` bytes from sbrk/arenas, ``in_use``, ``free`` (held, not
    returned to the OS), ``mmapped``; None without glibc 2.33+."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"arena": m.arena, "in_use": m.uordblks, "free": m.fordblks, "mmapped": m.hblkhd}


def proc_status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of this process, in KiB."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def rocksdb_stats() -> dict[str, Any]:
    """RocksDB's own figures, summed per table over its open databases (partitions)."""
    pipeline = sys.modules.get("agents.pipeline")
    if pipeline is None:
        return {}
    out: dict[str, Any] = {}
    for name in ("tokens_table", "tally_table"):
        table = getattr(pipeline, name, None)
        store = getattr(table, "data", None)
        dbs = getattr(store, "_dbs", None)
        if not dbs:
            continue
        sums = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
        for db in list(dbs.values()):
            for prop in ROCKSDB_PROPERTIES:
                try:
                    value = int(db.property_int_value(prop) or 0)
                    if "block-cache" in prop:
                        sums[prop] = max(sums[prop], value)
                    else:
                        sums[prop] += value
                except Exception:  # noqa: BLE001 - a database closed under us: skip it
                    pass
        out[name] = {"databases": len(dbs), **{k.split(".", 1)[1]: v for k, v in sums.items()}}
    return out


def _probe(path: Path, every: float, trace: bool) -> None:
    first = tracemalloc.take_snapshot() if trace else None
    t0 = time.monotonic()
    while True:
        time.sleep(every)
        row: dict[str, Any] = {
            "t": round(time.monotonic() - t0, 1),
            "proc_kib": proc_status(),
            "malloc": mallinfo(),
            "rocksdb": rocksdb_stats(),
        }
        if first is not None:
            snap = tracemalloc.take_snapshot()
            current, peak = tracemalloc.get_traced_memory()
            row["traced"] = {"current": current, "peak": peak}
            row["grew"] = [
                {
                    "where": str(s.traceback[0]),
                    "kib": round(s.size_diff / 1024, 1),
                    "n": s.count_diff,
                }
                for s in snap.compare_to(first, "lineno")[:15]
            ]
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def summarize(path: Path) -> list[dict[str, Any]]:
    """One row per probe, in MiB: RSS, glibc's heap in use and held free, RocksDB's
    memtables (all databases), its block cache (largest reported), table readers."""
    rows = []
    mib = 1 / (1024 * 1024)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        dbs = list(r["rocksdb"].values())
        malloc = r["malloc"] or {}
        rows.append(
            {
                "t": r["t"],
                "rss": round(r["proc_kib"].get("VmRSS", 0) / 1024, 1),
                "heap_in_use": round(malloc.get("in_use", 0) * mib, 1),
                "heap_free": round(malloc.get("free", 0) * mib, 1),
                "memtables": round(sum(d["size-all-mem-tables"] for d in dbs) * mib, 1),
                "block_cache": round(
                    max((d["block-cache-usage"] for d in dbs), default=0) * mib, 1
                ),
                "table_readers": round(sum(d["estimate-table-readers-mem"] for d in dbs) * mib, 1),
                "keys": sum(d["estimate-num-keys"] for d in dbs),
                "sst": round(sum(d["total-sst-files-size"] for d in dbs) * mib, 1),
            }
        )
    return rows


def main() -> None:
    out = os.environ.get("RINGTALLY_MEMPROBE_OUT")
    if out:
        trace = os.environ.get("RINGTALLY_MEMPROBE_TRACEMALLOC") == "1"
        if trace:
            tracemalloc.start(1)
        every = float(os.environ.get("RINGTALLY_MEMPROBE_EVERY", "30"))
        threading.Thread(target=_probe, args=(Path(out), every, trace), daemon=True).start()
    sys.argv = ["ringtally", *sys.argv[1:]]
    runpy.run_module("connectors.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
