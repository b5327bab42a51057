"""Benchmark of the native ringcrypto core (a benchmark, not a test).

Measures, for ring sizes 8, 16, 64, 256:
  * single verification throughput on one core (compact signatures, one
    ``verify`` call per signature);
  * batch verification throughput per core (``verify_batch(threads=1)`` on
    batchable signatures: votes from the ring's members on a few contexts);
  * signing time;
and the ``verify_batch`` speed-up from 1 to 2 threads (ring 16), and the
memory held by a cached Ring of 1,024 members.

ringtally-v2 vote signatures (bLSAG + slot tag + DLEQ, ring 16) are measured
beside the plain bLSAG figures they are bound by: ``verify_vote`` single
(compact), ``verify_vote_batch(threads=1)`` (batchable), ``sign_vote``; and
the hostile-batch cost (SPEC §8.4): a batch of keyless forged batchable
signatures (arbitrary L_i/R_i, the hash chain closed by hashing, so they pass
the batch's hash-chain stage) against a batch of valid ones, plain and vote.

Every figure is the median of repeated runs. Results are printed as a rich
table and written to bench/results/crypto.json.

    python bench/bench_crypto.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import ringcrypto

RING_SIZES = (8, 16, 64, 256)
CONTEXTS = 8  # votes are spread over this many submissions (contexts)
TARGETS = {
    "single_verify_per_s_per_core_ring16": 900,
    "batch_verify_per_s_per_core_ring16": 3500,
    "verify_batch_speedup_1_to_2_threads": 1.8,
    "ring_1024_memory_bytes_max": 1 << 20,
}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_ring(n: int) -> tuple[list[ringcrypto.SecretKey], ringcrypto.Ring]:
    keys = [
        ringcrypto.SecretKey.from_seed(n.to_bytes(4, "big") + i.to_bytes(28, "big"))
        for i in range(n)
    ]
    return keys, ringcrypto.Ring([k.public_key for k in keys])


def votes(keys, ring, count: int, batchable: bool):
    items = []
    for i in range(count):
        ctx = b"submission-%04d" % (i % CONTEXTS)
        msg = b"vote:%d:approve" % i
        sig = ringcrypto.sign(keys[i % len(keys)], ring, ctx, msg, batchable=batchable)
        items.append((ring, ctx, msg, sig))
    return items


def bench_ring_size(n: int, repeats: int, scale: float) -> dict:
    keys, ring = make_ring(n)
    batch_size = max(16, int(8192 * scale) // n)  # ~8k ring members' worth of work
    single_count = max(8, int(2048 * scale) // n)

    compact = votes(keys, ring, single_count, batchable=False)
    batchable = votes(keys, ring, batch_size, batchable=True)

    def run_single():
        for r, c, m, s in compact:
            ringcrypto.verify(r, c, m, s)

    def run_single_batchable_format():
        for r, c, m, s in batchable[:single_count]:
            ringcrypto.verify(r, c, m, s)

    def run_batch():
        out = ringcrypto.verify_batch(batchable, threads=1)
        assert all(x is not None for x in out)

    sign_n = max(4, int(256 * scale) // n)

    def run_sign():
        for i in range(sign_n):
            ringcrypto.sign(keys[i % n], ring, b"submission-0000", b"vote:%d" % i)

    t_single = median_time(run_single, repeats)
    t_single_b = median_time(run_single_batchable_format, repeats)
    t_batch = median_time(run_batch, repeats)
    t_sign = median_time(run_sign, repeats)
    return {
        "ring_size": n,
        "single_verify_per_s_per_core": single_count / t_single,
        "single_verify_batchable_format_per_s_per_core": min(single_count, len(batchable))
        / t_single_b,
        "batch_verify_per_s_per_core": batch_size / t_batch,
        "batch_size": batch_size,
        "sign_ms": 1000 * t_sign / sign_n,
        "compact_bytes": ringcrypto.signature_length(n),
        "batchable_bytes": ringcrypto.signature_length(n, True),
    }


def bench_speedup(repeats: int, scale: float) -> dict:
    """t(threads=1) / t(threads=2), measured as interleaved pairs so that a
    change in background load hits both sides; the median ratio is reported,
    with the CPU the process actually got (process time / wall time)."""
    keys, ring = make_ring(16)
    items = votes(keys, ring, max(64, int(2048 * scale)), batchable=True)
    compact = votes(keys, ring, max(32, int(512 * scale)), batchable=False)
    res = {}
    for label, its in (("batchable", items), ("compact", compact)):
        ratios, r1, r2, util2 = [], [], [], []
        for _ in range(max(repeats, 7)):
            w, c = time.perf_counter(), time.process_time()
            ringcrypto.verify_batch(its, threads=1)
            t1 = time.perf_counter() - w
            w, c = time.perf_counter(), time.process_time()
            ringcrypto.verify_batch(its, threads=2)
            t2 = time.perf_counter() - w
            util2.append((time.process_time() - c) / t2)
            ratios.append(t1 / t2)
            r1.append(len(its) / t1)
            r2.append(len(its) / t2)
        res[label] = {
            "items": len(its),
            "threads1_per_s": statistics.median(r1),
            "threads2_per_s": statistics.median(r2),
            "speedup": statistics.median(ratios),
            "speedup_max": max(ratios),
            "cores_obtained_threads2": statistics.median(util2),
        }
    return res


ELL = 2**252 + 27742317777372353535851937790883648493
EPOCH = b"2026-W49"


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _h_s(tag: bytes, data: bytes) -> bytes:
    v = int.from_bytes(hashlib.sha512(_lp(tag) + data).digest(), "little") % ELL
    return v.to_bytes(32, "little")


def _points(count: int, label: str) -> list[bytes]:
    """Valid, unrelated ristretto255 encodings (public keys of throwaway keys)."""
    return [
        ringcrypto.SecretKey.from_seed(hashlib.sha256(f"{label}{i}".encode()).digest()).public_key
        for i in range(count)
    ]


def forged_batchable(ring, ctx: bytes, msg: bytes, i: int, vote: tuple[bytes, int] | None) -> bytes:
    """A keyless forgery whose hash chain closes (SPEC §8.4): every L_i, R_i,
    s_i (and I, T, A, A', t) arbitrary, c_0 = chal(L_{n-1}, R_{n-1})."""
    n = len(ring)
    pts = _points(2 * n + 4, f"forge-{i}-")
    image, lr = pts[0], b"".join(pts[4 : 4 + 2 * n])
    scalars = b"".join(_h_s(b"bench", b"%d/%d" % (i, j)) for j in range(n + 1))
    if vote is None:
        tr = hashlib.sha512(
            _lp(b"ringtally-v2:challenge") + _lp(ctx) + ring.digest + image + _lp(msg)
        ).digest()
        head = b"\x02" + image
    else:
        epoch, slot = vote
        tag, a, a2 = pts[1], pts[2], pts[3]
        tr = hashlib.sha512(
            _lp(b"ringtally-v2:vote-challenge")
            + _lp(ctx)
            + ring.digest
            + image
            + _lp(epoch)
            + slot.to_bytes(4, "big")
            + tag
            + _lp(msg)
        ).digest()
        head = b"\x12" + image + tag + a + a2 + scalars[:32]
    c0 = _h_s(b"ringtally-v2:round", tr + lr[-64:])
    return head + c0 + scalars[32 : 32 + 32 * n] + lr


def bench_votes(repeats: int, scale: float) -> dict:
    """Vote signatures at ring 16 beside the plain bLSAG they build on.

    Plain and vote runs alternate (interleaved pairs, as in bench_speedup)
    so that a change in background load hits both sides; the reported
    vote/plain ratios are medians of the per-pair ratios."""
    n = 16
    keys, ring = make_ring(n)
    batch_size = max(16, int(8192 * scale) // n)
    single_count = max(8, int(2048 * scale) // n)

    def vote_items(count: int, batchable: bool):
        items = []
        for i in range(count):
            ctx, msg, slot = b"submission-%04d" % (i % CONTEXTS), b"vote:%d:approve" % i, i % 3
            sig = ringcrypto.sign_vote(
                keys[i % n], ring, ctx, EPOCH, slot, msg, batchable=batchable
            )
            items.append((ring, ctx, EPOCH, slot, msg, sig))
        return items

    v_compact = vote_items(single_count, False)
    v_batch = vote_items(batch_size, True)
    p_compact = votes(keys, ring, single_count, batchable=False)
    p_batch = votes(keys, ring, batch_size, batchable=True)
    sign_n = max(4, int(256 * scale) // n)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    runs = {
        "single": (
            lambda: [ringcrypto.verify(*it) for it in p_compact],
            lambda: [ringcrypto.verify_vote(*it) for it in v_compact],
            single_count,
        ),
        "single_batchable_format": (
            lambda: [ringcrypto.verify(*it) for it in p_batch[:single_count]],
            lambda: [ringcrypto.verify_vote(*it) for it in v_batch[:single_count]],
            min(single_count, batch_size),
        ),
        "batch": (
            lambda: ringcrypto.verify_batch(p_batch, threads=1),
            lambda: ringcrypto.verify_vote_batch(v_batch, threads=1),
            batch_size,
        ),
        "sign": (
            lambda: [
                ringcrypto.sign(keys[i % n], ring, b"submission-0000", b"vote:%d" % i)
                for i in range(sign_n)
            ],
            lambda: [
                ringcrypto.sign_vote(keys[i % n], ring, b"submission-0000", EPOCH, 0, b"v%d" % i)
                for i in range(sign_n)
            ],
            sign_n,
        ),
    }
    assert all(x is not None for x in ringcrypto.verify_vote_batch(v_batch, threads=1))
    out: dict = {"ring_size": n, "batch_size": batch_size}
    for name, (plain_fn, vote_fn, count) in runs.items():
        tp, tv, ratios = [], [], []
        for _ in range(max(repeats, 5)):
            a, b = timed(plain_fn), timed(vote_fn)
            tp.append(a)
            tv.append(b)
            ratios.append(a / b)  # vote throughput / plain throughput
        if name == "sign":
            out["plain_sign_ms"] = 1000 * statistics.median(tp) / count
            out["vote_sign_ms"] = 1000 * statistics.median(tv) / count
            out["sign_time_vote_over_plain"] = 1 / statistics.median(ratios)
        else:
            out[f"plain_{name}_verify_per_s_per_core"] = count / statistics.median(tp)
            out[f"vote_{name}_verify_per_s_per_core"] = count / statistics.median(tv)
            out[f"{name}_vote_over_plain_throughput"] = statistics.median(ratios)
    out["compact_bytes"] = ringcrypto.vote_signature_length(n)
    out["batchable_bytes"] = ringcrypto.vote_signature_length(n, True)
    return out


def bench_hostile(repeats: int, scale: float) -> dict:
    """SPEC §8.4: time of an all-forged batch / time of an all-valid batch
    (ring 16, batchable, threads=1), plain and vote; median of interleaved
    pairs."""
    n = 16
    keys, ring = make_ring(n)
    count = max(64, int(256 * scale))
    res = {}
    for scheme in ("plain", "vote"):
        valid, forged = [], []
        for i in range(count):
            ctx, msg, slot = b"submission-%04d" % (i % CONTEXTS), b"vote:%d" % i, i % 3
            if scheme == "plain":
                sig = ringcrypto.sign(keys[i % n], ring, ctx, msg, batchable=True)
                valid.append((ring, ctx, msg, sig))
                forged.append((ring, ctx, msg, forged_batchable(ring, ctx, msg, i, None)))
            else:
                sig = ringcrypto.sign_vote(keys[i % n], ring, ctx, EPOCH, slot, msg, batchable=True)
                valid.append((ring, ctx, EPOCH, slot, msg, sig))
                bad = forged_batchable(ring, ctx, msg, i, (EPOCH, slot))
                forged.append((ring, ctx, EPOCH, slot, msg, bad))
        fn = ringcrypto.verify_batch if scheme == "plain" else ringcrypto.verify_vote_batch
        assert all(x is not None for x in fn(valid, threads=1))
        assert fn(forged, threads=1) == [None] * count
        tv, tf, ratios = [], [], []
        for _ in range(max(repeats, 5)):  # interleaved pairs: load hits both sides
            t0 = time.perf_counter()
            fn(valid, threads=1)
            t1 = time.perf_counter()
            fn(forged, threads=1)
            t2 = time.perf_counter()
            tv.append(t1 - t0)
            tf.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        res[scheme] = {
            "items": count,
            "valid_batch_ms": 1000 * statistics.median(tv),
            "forged_batch_ms": 1000 * statistics.median(tf),
            "forged_over_valid": statistics.median(ratios),
            "forged_over_valid_max": max(ratios),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (smoke run)")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "crypto.json"
    )
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0
    console = Console(width=150)
    load_before = os.getloadavg()

    rows = []
    for n in RING_SIZES:
        console.print(f"[dim]ring {n} …[/dim]")
        rows.append(bench_ring_size(n, args.repeats, scale))
    console.print("[dim]vote signatures (ring 16) …[/dim]")
    votes16 = bench_votes(args.repeats, scale)
    console.print("[dim]hostile batches (ring 16) …[/dim]")
    hostile = bench_hostile(args.repeats, scale)
    console.print("[dim]thread scaling …[/dim]")
    speed = bench_speedup(args.repeats, scale)
    _, big = make_ring(1024)
    mem = big.memory_size

    table = Table(
        title=f"ringcrypto {ringcrypto.__version__} ({ringcrypto.SPEC_VERSION}) "
        f"— medians of {args.repeats} runs"
    )
    for col in (
        "ring",
        "single verif/s/core",
        "single (batchable fmt)",
        "batch verif/s/core",
        "batch size",
        "sign ms",
        "compact B",
        "batchable B",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["ring_size"]),
            f"{r['single_verify_per_s_per_core']:,.0f}",
            f"{r['single_verify_batchable_format_per_s_per_core']:,.0f}",
            f"{r['batch_verify_per_s_per_core']:,.0f}",
            str(r["batch_size"]),
            f"{r['sign_ms']:.2f}",
            str(r["compact_bytes"]),
            str(r["batchable_bytes"]),
        )
    console.print(table)

    tv = Table(
        title="ring 16: ringtally-v2 vote signature vs the plain bLSAG floor "
        "(interleaved pairs, one core)"
    )
    for col in ("", "single verif/s", "single (batchable fmt)", "batch verif/s", "sign ms"):
        tv.add_column(col, justify="right")
    for who in ("plain", "vote"):
        tv.add_row(
            "plain bLSAG" if who == "plain" else "vote (bLSAG + T + DLEQ)",
            f"{votes16[f'{who}_single_verify_per_s_per_core']:,.0f}",
            f"{votes16[f'{who}_single_batchable_format_verify_per_s_per_core']:,.0f}",
            f"{votes16[f'{who}_batch_verify_per_s_per_core']:,.0f}",
            f"{votes16[f'{who}_sign_ms']:.2f}",
        )
    tv.add_row(
        "vote / plain (median of pairs)",
        f"{votes16['single_vote_over_plain_throughput']:.2f}",
        f"{votes16['single_batchable_format_vote_over_plain_throughput']:.2f}",
        f"{votes16['batch_vote_over_plain_throughput']:.2f}",
        f"{votes16['sign_time_vote_over_plain']:.2f}x time",
    )
    console.print(tv)
    console.print(
        f"vote signature bytes (ring 16): compact {votes16['compact_bytes']}, "
        f"batchable {votes16['batchable_bytes']}"
    )
    th = Table(
        title="hostile batch (SPEC §8.4): keyless forgeries that pass the hash chain, "
        "ring 16, threads=1"
    )
    for col in ("scheme", "items", "valid batch ms", "all-forged batch ms", "forged / valid"):
        th.add_column(col, justify="right")
    for scheme, h in hostile.items():
        th.add_row(
            scheme,
            str(h["items"]),
            f"{h['valid_batch_ms']:.1f}",
            f"{h['forged_batch_ms']:.1f}",
            f"{h['forged_over_valid']:.2f}",
        )
    console.print(th)

    r16 = next(r for r in rows if r["ring_size"] == 16)
    checks = {
        "single_verify_per_s_per_core_ring16": (
            r16["single_verify_per_s_per_core"],
            TARGETS["single_verify_per_s_per_core_ring16"],
            ">=",
        ),
        "batch_verify_per_s_per_core_ring16": (
            r16["batch_verify_per_s_per_core"],
            TARGETS["batch_verify_per_s_per_core_ring16"],
            ">=",
        ),
        "verify_batch_speedup_1_to_2_threads": (
            speed["batchable"]["speedup"],
            TARGETS["verify_batch_speedup_1_to_2_threads"],
            ">=",
        ),
        "ring_1024_memory_bytes": (mem, TARGETS["ring_1024_memory_bytes_max"], "<"),
    }
    t2 = Table(title="targets (ring 16; speed-up on batchable verify_batch)")
    for col in ("metric", "measured", "target", "met"):
        t2.add_column(col)
    met = {}
    for name, (value, target, op) in checks.items():
        ok = value >= target if op == ">=" else value < target
        met[name] = ok
        t2.add_row(
            name,
            f"{value:,.2f}",
            f"{op} {target:,}",
            "[green]yes[/green]" if ok else "[red]no[/red]",
        )
    console.print(t2)
    console.print(
        f"verify_batch thread scaling (median of interleaved pairs): "
        f"batchable {speed['batchable']['speedup']:.2f}x "
        f"(best {speed['batchable']['speedup_max']:.2f}x, "
        f"process got {speed['batchable']['cores_obtained_threads2']:.2f} cores), "
        f"compact {speed['compact']['speedup']:.2f}x "
        f"(best {speed['compact']['speedup_max']:.2f}x); "
        f"Ring(1024) memory ≈ {mem:,} bytes; 1-min load average before/after: "
        f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )

    result = {
        "version": ringcrypto.__version__,
        "spec": ringcrypto.SPEC_VERSION,
        "repeats": args.repeats,
        "quick": args.quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "ring_sizes": rows,
        "votes_ring16": votes16,
        "hostile_batch_ring16": hostile,
        "thread_scaling_ring16": speed,
        "ring_1024_memory_bytes": mem,
        "targets": TARGETS,
        "targets_met": met,
        "load_average_before_after": [load_before, os.getloadavg()],
        "note": "machine may be shared with other workloads (see load averages); "
        "figures are medians of repeated runs",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
