"""Tests for the native ``ringcrypto`` module (ringtally-v2, native/SPEC.md).

Covers round trips, linkability properties, every tamper, malformed input of
every kind (never crashing the interpreter), verify_batch on mixed sets, the
secret-hygiene guarantees, vote signatures (slot tags, DLEQ, every field
tampered, verify_vote_batch), the bounded thread-pool cache, and
native/test-vectors.json — including an independent pure-Python
recomputation of every hash and scalar in the spec (only the curve
arithmetic itself is not re-implemented here).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import pickle
import random
import threading
import time
from pathlib import Path

import pytest

ringcrypto = pytest.importorskip("ringcrypto")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ringcrypto import (  # noqa: E402
    InvalidSignature,
    MalformedInput,
    Ring,
    SecretKey,
    sign,
    sign_vote,
    verify,
    verify_batch,
    verify_vote,
    verify_vote_batch,
)

VECTORS = Path(__file__).resolve().parent.parent / "native" / "test-vectors.json"
ELL = 2**252 + 27742317777372353535851937790883648493
ELL_BYTES = ELL.to_bytes(32, "little")
MAX255 = (2**255 - 1).to_bytes(32, "little")
IDENTITY = bytes(32)
BASEPOINT = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
TWO_B = bytes.fromhex("6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919")


def seed(k: int) -> bytes:
    return hashlib.sha512(f"ringtally-v2 test seed {k}".encode()).digest()[:32]


def keys_and_ring(first: int, n: int) -> tuple[list[SecretKey], Ring]:
    keys = [SecretKey.from_seed(seed(first + i)) for i in range(n)]
    return keys, Ring([k.public_key for k in keys])


def key_at(keys: list[SecretKey], ring: Ring, index: int) -> SecretKey:
    pk = ring.public_keys[index]
    return next(k for k in keys if k.public_key == pk)


def set_bytes(sig: bytes, offset: int, value: bytes) -> bytes:
    return sig[:offset] + value + sig[offset + len(value) :]


# --------------------------------------------------------------------------
# Round trips and properties
# --------------------------------------------------------------------------


def test_module_surface() -> None:
    assert ringcrypto.SPEC_VERSION == "ringtally-v2"
    assert ringcrypto.MAX_RING_SIZE_DEFAULT == 1024
    assert issubclass(MalformedInput, ValueError)
    assert issubclass(InvalidSignature, ValueError)
    assert not issubclass(MalformedInput, InvalidSignature)
    assert ringcrypto.signature_length(16) == 577
    assert ringcrypto.signature_length(16, batchable=True) == 1601
    assert ringcrypto.signature_length(1, True) == 161
    assert ringcrypto.vote_signature_length(16) == 161 + 32 * 16
    assert ringcrypto.vote_signature_length(16, batchable=True) == 193 + 96 * 16
    for n in range(1, 300):
        lengths = {
            ringcrypto.signature_length(n),
            ringcrypto.signature_length(n, True),
            ringcrypto.vote_signature_length(n),
            ringcrypto.vote_signature_length(n, True),
        }
        assert len(lengths) == 4, n
    assert callable(ringcrypto.hazmat.sign_vote_with_randomness)
    from ringcrypto import hazmat  # attribute import works

    # ... and so does the dotted import.
    assert importlib.import_module("ringcrypto.hazmat") is hazmat
    assert callable(ringcrypto.hazmat.sign_with_randomness)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 16])
def test_round_trip_every_index(n: int) -> None:
    keys, ring = keys_and_ring(100 * n, n)
    assert len(ring) == n
    ctx = f"submission-{n}".encode()
    batch = []
    for pi in range(n):
        k = key_at(keys, ring, pi)
        assert ring.index(k.public_key) == pi
        assert k.public_key in ring
        for batchable in (False, True):
            msg = f"vote-{pi}-{batchable}".encode()
            sig = sign(k, ring, ctx, msg, batchable=batchable)
            assert len(sig) == ringcrypto.signature_length(n, batchable)
            assert verify(ring, ctx, msg, sig) == k.key_image(ctx)
            batch.append((ring, ctx, msg, sig))
    for threads in (None, 1, 2):
        assert verify_batch(batch, threads=threads) == [verify(*item) for item in batch]


@pytest.mark.parametrize("n", [33, 64])
def test_round_trip_larger_rings(n: int) -> None:
    keys, ring = keys_and_ring(5000 + n, n)
    for pi in (0, n // 2, n - 1):
        k = key_at(keys, ring, pi)
        for batchable in (False, True):
            sig = sign(k, ring, b"c", b"m", batchable=batchable)
            assert verify(ring, b"c", b"m", sig) == k.key_image(b"c")


def test_key_image_linkability_properties() -> None:
    keys, ring_a = keys_and_ring(1, 5)
    signer = keys[2]
    ring_b = Ring(
        [SecretKey.from_seed(seed(50 + i)).public_key for i in range(7)] + [signer.public_key]
    )
    ia = verify(ring_a, b"sub-1", b"yes", sign(signer, ring_a, b"sub-1", b"yes"))
    ib = verify(ring_b, b"sub-1", b"no", sign(signer, ring_b, b"sub-1", b"no", batchable=True))
    assert ia == ib == signer.key_image(b"sub-1")
    ic = verify(ring_a, b"sub-2", b"yes", sign(signer, ring_a, b"sub-2", b"yes"))
    assert ic != ia
    other = verify(ring_a, b"sub-1", b"yes", sign(keys[3], ring_a, b"sub-1", b"yes"))
    assert other != ia


def test_signing_is_hedged_and_hazmat_is_deterministic() -> None:
    keys, ring = keys_and_ring(300, 4)
    k = keys[0]
    assert sign(k, ring, b"c", b"m") != sign(k, ring, b"c", b"m")
    z = bytes(range(32))
    a = ringcrypto.hazmat.sign_with_randomness(k, ring, b"c", b"m", z)
    b = ringcrypto.hazmat.sign_with_randomness(k, ring, b"c", b"m", z)
    assert a == b
    with pytest.raises(MalformedInput):
        ringcrypto.hazmat.sign_with_randomness(k, ring, b"c", b"m", z[:31])


def test_batchable_converts_to_compact_dedupe_by_key_image() -> None:
    # SPEC §6.4: signature bytes are not unique identifiers; key images are.
    keys, ring = keys_and_ring(310, 6)
    b = sign(keys[4], ring, b"c", b"m", batchable=True)
    c = b"\x01" + b[1 : ringcrypto.signature_length(6)]
    assert verify(ring, b"c", b"m", c) == verify(ring, b"c", b"m", b) == keys[4].key_image(b"c")


def test_ring_canonicalisation_and_memory() -> None:
    keys, ring = keys_and_ring(10, 6)
    pks = [k.public_key for k in keys]
    assert ring.public_keys == sorted(pks)
    assert Ring(list(reversed(pks))).digest == ring.digest
    assert Ring(list(reversed(pks))) == ring
    assert hash(Ring(pks)) == hash(ring)
    assert len(ring.digest) == 64
    _, big = keys_and_ring(20_000, 1024)
    assert big.memory_size < 1 << 20
    assert "digest=" in repr(ring)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 10),
    pi=st.integers(0, 1000),
    batchable=st.booleans(),
    ctx=st.binary(max_size=40),
    msg=st.binary(max_size=300),
    pos=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_property_round_trip_and_byte_flip(n, pi, batchable, ctx, msg, pos, bit) -> None:
    keys, ring = keys_and_ring(40_000 + n, n)
    k = key_at(keys, ring, pi % n)
    sig = sign(k, ring, ctx, msg, batchable=batchable)
    assert verify(ring, ctx, msg, sig) == k.key_image(ctx)
    bad = bytearray(sig)
    bad[pos % len(bad)] ^= 1 << bit
    with pytest.raises(ValueError):
        verify(ring, ctx, msg, bytes(bad))
    assert verify_batch([(ring, ctx, msg, bytes(bad))]) == [None]


# --------------------------------------------------------------------------
# Tampering: every part of the signature
# --------------------------------------------------------------------------

N = 5
CTX = b"submission-42"
MSG = b"approve"


def tamper_cases(batchable: bool):
    keys, ring = keys_and_ring(500, N)
    sig = sign(key_at(keys, ring, 2), ring, CTX, MSG, batchable=batchable)
    other_pt = SecretKey.from_seed(seed(999)).public_key
    s_off = lambda i: 65 + 32 * i  # noqa: E731
    cases = [
        ("message", ring, CTX, b"reject", sig, InvalidSignature),
        ("context", ring, b"submission-43", MSG, sig, InvalidSignature),
        ("key image", ring, CTX, MSG, set_bytes(sig, 1, other_pt), InvalidSignature),
        ("key image identity", ring, CTX, MSG, set_bytes(sig, 1, IDENTITY), MalformedInput),
        ("key image non-canonical", ring, CTX, MSG, set_bytes(sig, 1, MAX255), MalformedInput),
        ("c_0 = l", ring, CTX, MSG, set_bytes(sig, 33, ELL_BYTES), MalformedInput),
        ("c_0 flipped", ring, CTX, MSG, set_bytes(sig, 33, bytes([sig[33] ^ 1])), InvalidSignature),
        ("truncated", ring, CTX, MSG, sig[:-1], MalformedInput),
        ("extended", ring, CTX, MSG, sig + b"\x00", MalformedInput),
        ("empty", ring, CTX, MSG, b"", MalformedInput),
        ("no responses", ring, CTX, MSG, sig[:65], MalformedInput),
        ("tag 0x03", ring, CTX, MSG, set_bytes(sig, 0, b"\x03"), MalformedInput),
        (
            "other tag",
            ring,
            CTX,
            MSG,
            set_bytes(sig, 0, b"\x01" if batchable else b"\x02"),
            MalformedInput,
        ),
    ]
    for j in range(N):
        pks = list(ring.public_keys)
        pks[j] = SecretKey.from_seed(seed(90_000 + j)).public_key
        cases.append((f"member {j}", Ring(pks), CTX, MSG, sig, InvalidSignature))
    bigger = Ring(ring.public_keys + [other_pt])
    cases.append(("bigger ring", bigger, CTX, MSG, sig, MalformedInput))
    for i in range(N):
        flipped = set_bytes(sig, s_off(i), bytes([sig[s_off(i)] ^ 1]))
        cases.append((f"s_{i} flipped", ring, CTX, MSG, flipped, InvalidSignature))
        cases.append(
            (f"s_{i} = l", ring, CTX, MSG, set_bytes(sig, s_off(i), ELL_BYTES), MalformedInput)
        )
        cases.append(
            (f"s_{i} = 2^255-1", ring, CTX, MSG, set_bytes(sig, s_off(i), MAX255), MalformedInput)
        )
    if batchable:
        for i in range(N):
            for w, name in ((0, "L"), (1, "R")):
                off = 65 + 32 * N + 64 * i + 32 * w
                cases.append(
                    (
                        f"{name}_{i} other",
                        ring,
                        CTX,
                        MSG,
                        set_bytes(sig, off, other_pt),
                        InvalidSignature,
                    )
                )
                cases.append(
                    (
                        f"{name}_{i} non-canonical",
                        ring,
                        CTX,
                        MSG,
                        set_bytes(sig, off, MAX255),
                        MalformedInput,
                    )
                )
    return cases


@pytest.mark.parametrize("batchable", [False, True])
def test_every_tamper_rejected(batchable: bool) -> None:
    cases = tamper_cases(batchable)
    for name, ring, ctx, msg, sig, exc in cases:
        with pytest.raises(exc) as info:
            verify(ring, ctx, msg, sig)
        assert isinstance(info.value.kind, str) and info.value.kind, name
        assert str(info.value), name
    results = verify_batch([(r, c, m, s) for _, r, c, m, s, _ in cases], threads=2)
    assert results == [None] * len(cases)


def test_length_error_message() -> None:
    keys, ring = keys_and_ring(600, 16)
    sig = sign(keys[0], ring, b"c", b"m")
    with pytest.raises(MalformedInput) as info:
        verify(ring, b"c", b"m", sig[:97])
    assert str(info.value) == (
        "signature length 97 does not match ring of 16: expected 577 (compact) or 1601 (batchable)"
    )
    assert info.value.kind == "length"


# --------------------------------------------------------------------------
# Malformed input of every kind; never crash
# --------------------------------------------------------------------------


def test_wrong_types_raise_type_error() -> None:
    keys, ring = keys_and_ring(700, 3)
    sig = sign(keys[0], ring, b"c", b"m")
    for bad in ("str", 5, None, [1, 2]):
        with pytest.raises(TypeError):
            verify(ring, bad, b"m", sig)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            verify(ring, b"c", b"m", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            sign(keys[0], ring, bad, b"m")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            SecretKey.from_seed(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify(ring.public_keys, b"c", b"m", sig)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(ring, ring, b"c", b"m")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ring(b"\x01" * 32)  # bytes is not a sequence of keys
    with pytest.raises(TypeError):
        Ring(["ab" * 16])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Ring(5)  # type: ignore[arg-type]


def kind_of(exc_type, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value.kind


def test_malformed_keys() -> None:
    assert kind_of(MalformedInput, SecretKey.from_seed, b"\x00" * 31) == "bad-length"
    assert kind_of(MalformedInput, SecretKey.from_seed, b"\x00" * 33) == "bad-length"
    assert kind_of(MalformedInput, SecretKey.from_bytes, b"\x01" * 31) == "bad-length"
    assert kind_of(MalformedInput, SecretKey.from_bytes, ELL_BYTES) == "non-canonical-scalar"
    assert kind_of(MalformedInput, SecretKey.from_bytes, MAX255) == "non-canonical-scalar"
    assert kind_of(MalformedInput, SecretKey.from_bytes, bytes(32)) == "zero-scalar"
    one = SecretKey.from_bytes((1).to_bytes(32, "little"))
    assert one.public_key == BASEPOINT
    assert SecretKey.from_bytes((2).to_bytes(32, "little")).public_key == TWO_B
    k = SecretKey.from_seed(seed(1))
    assert SecretKey.from_bytes(k.export_secret()).public_key == k.public_key


def test_malformed_rings() -> None:
    pk1 = SecretKey.from_seed(seed(1)).public_key
    pk2 = SecretKey.from_seed(seed(2)).public_key
    assert kind_of(MalformedInput, Ring, []) == "ring-size"
    assert kind_of(MalformedInput, Ring, [pk1, pk1]) == "duplicate-member"
    assert kind_of(MalformedInput, Ring, [pk1, IDENTITY]) == "identity-member"
    assert kind_of(MalformedInput, Ring, [pk1, MAX255]) == "invalid-point"
    assert kind_of(MalformedInput, Ring, [pk1, b"\x01" + bytes(31)]) == "invalid-point"
    assert kind_of(MalformedInput, Ring, [pk1, pk2[:31]]) == "bad-length"
    assert kind_of(MalformedInput, Ring, [pk1, pk2 + b"\x00"]) == "bad-length"
    assert kind_of(MalformedInput, Ring, [pk1, pk2], max_size=1) == "ring-size"
    assert kind_of(MalformedInput, Ring, [pk1], max_size=0) == "ring-size"
    assert kind_of(MalformedInput, Ring, [pk1], max_size=70_000) == "ring-size"
    many = [SecretKey.from_seed(seed(3000 + i)).public_key for i in range(1025)]
    assert kind_of(MalformedInput, Ring, many) == "ring-size"
    assert len(Ring(many, max_size=2048)) == 1025
    with pytest.raises(ValueError):
        Ring([pk1]).index(pk2)
    assert pk2 not in Ring([pk1])
    assert "not bytes" not in Ring([pk1])  # type: ignore[operator]


def test_sign_key_not_in_ring() -> None:
    _, ring = keys_and_ring(800, 3)
    outsider = SecretKey.from_seed(seed(801_000))
    with pytest.raises(MalformedInput, match="not a member") as info:
        sign(outsider, ring, b"c", b"m")
    assert info.value.kind == "not-in-ring"


def test_malformed_signatures_kinds() -> None:
    keys, ring = keys_and_ring(900, 4)
    sig = sign(keys[0], ring, b"c", b"m")
    bsig = sign(keys[0], ring, b"c", b"m", batchable=True)
    cases = {
        "length": [b"", b"\x01", sig[:-1], sig + b"\x00", bsig[:-32]],
        "unknown-tag": [set_bytes(sig, 0, b"\x00"), set_bytes(bsig, 0, b"\xff")],
        "tag-mismatch": [set_bytes(sig, 0, b"\x02"), set_bytes(bsig, 0, b"\x01")],
        "non-canonical-scalar": [set_bytes(sig, 33, ELL_BYTES), set_bytes(sig, 65, MAX255)],
        "identity-key-image": [set_bytes(sig, 1, IDENTITY)],
        "invalid-point": [set_bytes(sig, 1, MAX255), set_bytes(bsig, 65 + 128, MAX255)],
    }
    for kind, sigs in cases.items():
        for s in sigs:
            assert kind_of(MalformedInput, verify, ring, b"c", b"m", s) == kind


def test_random_garbage_never_crashes() -> None:
    rnd = random.Random(1234)
    keys, ring = keys_and_ring(1000, 3)
    for _ in range(400):
        n = rnd.choice([0, 1, 31, 32, 33, 64, 65, 161, 353, rnd.randrange(0, 600)])
        blob = bytes(rnd.randrange(256) for _ in range(n))
        if n in (161, 353) and rnd.random() < 0.5:
            blob = bytes([rnd.choice([1, 2])]) + blob[1:]
        with pytest.raises(ValueError):
            verify(ring, blob[:8], blob[8:16], blob)
        try:
            Ring([blob[:32], blob[32:64]] if n >= 64 else [blob])
        except ValueError:
            pass
        try:
            SecretKey.from_bytes(blob)
        except ValueError:
            pass
        try:
            ringcrypto.hash_to_group(blob, blob[:255] or b"x")
        except ValueError:
            pass


def test_verify_batch_mixed_with_garbage() -> None:
    keys3, ring3 = keys_and_ring(1100, 3)
    keys8, ring8 = keys_and_ring(1200, 8)
    items, expected = [], []
    rnd = random.Random(7)
    for k in range(150):  # more than two 64-item chunks
        ring, keys = (ring3, keys3) if k % 2 else (ring8, keys8)
        signer = keys[k % len(keys)]
        ctx, msg = f"ctx-{k % 3}".encode(), f"m{k}".encode()
        sig = sign(signer, ring, ctx, msg, batchable=k % 4 != 0)
        mode = k % 6
        if mode == 1:  # s_0 flipped: chain over carried bytes still closes
            sig = set_bytes(sig, 65, bytes([sig[65] ^ 1]))
        elif mode == 3:
            sig = bytes(rnd.randrange(256) for _ in range(len(sig)))
        elif mode == 5:
            sig = os.urandom(rnd.randrange(0, 200))
        items.append((ring, ctx, msg, sig))
        expected.append(signer.key_image(ctx) if mode in (0, 2, 4) else None)
    for threads in (None, 1, 2, 4):
        assert verify_batch(items, threads=threads) == expected
    assert verify_batch([]) == []
    assert verify_batch(iter(items[:4])) == expected[:4]
    with pytest.raises(ValueError):
        verify_batch(items, threads=0)
    with pytest.raises((ValueError, OverflowError)):
        verify_batch(items, threads=-1)
    with pytest.raises(TypeError):
        verify_batch([(ring3, b"c", b"m")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        verify_batch([(b"not a ring", b"c", b"m", b"s")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        verify_batch([(ring3, "c", b"m", b"s")])  # type: ignore[list-item]


def test_verify_batch_from_python_threads() -> None:
    keys, ring = keys_and_ring(1300, 8)
    items = [
        (ring, b"c", b"%d" % i, sign(keys[i % 8], ring, b"c", b"%d" % i, batchable=True))
        for i in range(40)
    ]
    want = verify_batch(items)
    out: list = []
    threads = [
        threading.Thread(target=lambda: out.append(verify_batch(items, threads=2)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 4


def test_verify_batch_releases_the_gil() -> None:
    # While verify_batch runs in a thread, the main thread must keep running
    # Python code: the longest pause it sees must be far shorter than the call.
    keys, ring = keys_and_ring(1400, 16)
    items = [
        (ring, b"c", b"%d" % i, sign(keys[i % 16], ring, b"c", b"%d" % i, batchable=True))
        for i in range(300)
    ]
    took: list[float] = []

    def work() -> None:
        t0 = time.perf_counter()
        verify_batch(items, threads=1)
        took.append(time.perf_counter() - t0)

    t = threading.Thread(target=work)
    last, max_gap = time.perf_counter(), 0.0
    t.start()
    while t.is_alive():
        now = time.perf_counter()
        max_gap, last = max(max_gap, now - last), now
    max_gap = max(max_gap, time.perf_counter() - last)
    t.join()
    assert took and took[0] > 0.02
    assert max_gap < 0.5 * took[0], (max_gap, took[0])


# --------------------------------------------------------------------------
# Secret hygiene
# --------------------------------------------------------------------------


def test_secrets_never_in_repr_and_not_picklable() -> None:
    k = SecretKey.from_seed(seed(5))
    secret_hex = k.export_secret().hex()
    for text in (repr(k), str(k), f"{k!r}", f"{k}"):
        assert secret_hex not in text
        assert secret_hex[:16] not in text
        assert "redacted" in text
    assert k.public_key.hex() in repr(k)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(k, protocol=proto)
    with pytest.raises(TypeError):
        copy.copy(k)
    with pytest.raises(TypeError):
        copy.deepcopy(k)
    assert not hasattr(k, "__dict__")


# --------------------------------------------------------------------------
# Conformance: RFC 9380 expand_message_xmd and hash_to_group
# --------------------------------------------------------------------------


def py_expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1, written independently of the Rust code."""
    ell = -(-length // 64)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    out, prev = b"", bytes(64)
    for i in range(1, ell + 1):
        prev = hashlib.sha512(
            bytes(a ^ b for a, b in zip(b0, prev, strict=True)) + bytes([i]) + dst_prime
        ).digest()
        out += prev
    return out[:length]


RFC9380_K3 = [
    (0x20, b"", "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (0x20, b"abc", "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    (0x20, b"abcdef0123456789", "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"),
    (
        0x80,
        b"abc",
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
]


@pytest.mark.parametrize("length,msg,want", RFC9380_K3)
def test_rfc9380_expand_message_xmd(length: int, msg: bytes, want: str) -> None:
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    assert ringcrypto.expand_message_xmd(msg, dst, length).hex() == want
    assert py_expand_message_xmd(msg, dst, length).hex() == want


def test_hash_to_group_arguments() -> None:
    p = ringcrypto.hash_to_group(b"abc", b"ringtally-v2:test")
    assert len(p) == 32 and p != IDENTITY
    assert ringcrypto.hash_to_group(b"abc", b"ringtally-v2:test") == p
    assert ringcrypto.hash_to_group(b"abd", b"ringtally-v2:test") != p
    assert kind_of(MalformedInput, ringcrypto.hash_to_group, b"abc", b"") == "bad-argument"
    assert kind_of(MalformedInput, ringcrypto.hash_to_group, b"abc", b"x" * 256) == "bad-argument"
    ringcrypto.hash_to_group(b"abc", b"x" * 255)
    assert kind_of(MalformedInput, ringcrypto.expand_message_xmd, b"", b"x", 0) == "bad-argument"


# --------------------------------------------------------------------------
# native/test-vectors.json
# --------------------------------------------------------------------------


def lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def h_s(tag: bytes, data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(lp(tag) + data).digest(), "little") % ELL


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


def ring_named(vectors: dict, name: str) -> Ring:
    r = next(r for r in vectors["rings"] if r["name"] == name)
    return Ring([bytes.fromhex(p) for p in r["public_keys"]])


def test_vectors_hashes(vectors: dict) -> None:
    assert vectors["spec"] == "ringtally-v2"
    for v in vectors["expand_message_xmd"]:
        msg, dst = bytes.fromhex(v["msg"]), v["dst"].encode()
        assert ringcrypto.expand_message_xmd(msg, dst, 64).hex() == v["uniform_bytes"]
        assert py_expand_message_xmd(msg, dst, 64).hex() == v["uniform_bytes"]
    for v in vectors["hash_to_group"]:
        assert (
            ringcrypto.hash_to_group(bytes.fromhex(v["msg"]), v["dst"].encode()).hex() == v["point"]
        )


def test_vectors_keys_images_rings(vectors: dict) -> None:
    keys = vectors["keys"]
    for k, v in enumerate(keys):
        assert seed(k).hex() == v["seed"]
        # SPEC §3 recomputed independently: x = H_s("ringtally-v2:keygen", seed).
        assert h_s(b"ringtally-v2:keygen", seed(k)).to_bytes(32, "little").hex() == v["secret"]
        key = SecretKey.from_seed(seed(k))
        assert key.export_secret().hex() == v["secret"]
        assert key.public_key.hex() == v["public_key"]
    for v in vectors["key_images"]:
        key = SecretKey.from_bytes(bytes.fromhex(keys[v["key"]]["secret"]))
        ctx = bytes.fromhex(v["context"])
        assert key.key_image(ctx).hex() == v["key_image"]
        assert (
            ringcrypto.hash_to_group(ctx, b"ringtally-v2:key-image-base").hex()
            == v["key_image_base"]
        )
    for r in vectors["rings"]:
        ring = Ring([bytes.fromhex(keys[i]["public_key"]) for i in r["keys"]])
        assert [p.hex() for p in ring.public_keys] == r["public_keys"]
        assert ring.digest.hex() == r["digest"]
        pks = b"".join(bytes.fromhex(p) for p in r["public_keys"])
        digest = hashlib.sha512(
            lp(b"ringtally-v2:ring") + len(r["public_keys"]).to_bytes(4, "big") + pks
        )
        assert digest.hexdigest() == r["digest"]


def test_vectors_signatures(vectors: dict) -> None:
    keys = vectors["keys"]
    sizes = set()
    for v in vectors["signatures"]:
        ring = ring_named(vectors, v["ring"])
        sizes.add(len(ring))
        key = SecretKey.from_bytes(bytes.fromhex(keys[v["signer_key"]]["secret"]))
        assert ring.index(key.public_key) == v["signer_index"]
        z = hashlib.sha512(f"ringtally-v2 test z {v['randomness_label']}".encode()).digest()[:32]
        assert z.hex() == v["randomness"]
        ctx, msg = bytes.fromhex(v["context"]), bytes.fromhex(v["message"])
        batchable = v["format"] == "batchable"
        sig = ringcrypto.hazmat.sign_with_randomness(key, ring, ctx, msg, z, batchable=batchable)
        assert sig.hex() == v["signature"]
        assert verify(ring, ctx, msg, sig).hex() == v["key_image"]
        assert verify_batch([(ring, ctx, msg, sig)]) == [bytes.fromhex(v["key_image"])]
    assert sizes == {1, 2, 3, 16}


def test_vectors_scalar_side_recomputed_in_python(vectors: dict) -> None:
    """SPEC §6 transcript, round challenges and hedged nonces, from hashlib only."""
    keys = vectors["keys"]
    for v in vectors["signatures"]:
        ring = ring_named(vectors, v["ring"])
        n, pi = len(ring), v["signer_index"]
        sig = bytes.fromhex(v["signature"])
        x_bytes = bytes.fromhex(keys[v["signer_key"]]["secret"])
        x = int.from_bytes(x_bytes, "little")
        ctx, msg = bytes.fromhex(v["context"]), bytes.fromhex(v["message"])
        image, c0 = sig[1:33], int.from_bytes(sig[33:65], "little")
        s = [int.from_bytes(sig[65 + 32 * i : 97 + 32 * i], "little") for i in range(n)]
        t = hashlib.sha512(
            lp(b"ringtally-v2:challenge") + lp(ctx) + ring.digest + image + lp(msg)
        ).digest()
        nonce_seed = hashlib.sha512(
            lp(b"ringtally-v2:nonce-seed") + x_bytes + bytes.fromhex(v["randomness"]) + t
        ).digest()
        k = [h_s(b"ringtally-v2:nonce", nonce_seed + j.to_bytes(4, "big")) for j in range(n + 1)]
        for i in range(n):
            if i != pi:
                assert s[i] == k[i + 1], f"decoy response s_{i}"
        if v["format"] == "batchable":
            lr = sig[65 + 32 * n :]
            c = [c0]
            for i in range(n):
                c.append(h_s(b"ringtally-v2:round", t + lr[64 * i : 64 * i + 64]))
            assert c[n] == c0, "ring closes over carried L/R"
            assert s[pi] == (k[0] - c[pi] * x) % ELL, "s_pi = alpha - c_pi * x"


def test_vectors_negative(vectors: dict) -> None:
    classes = {"MalformedInput": MalformedInput, "InvalidSignature": InvalidSignature}
    for v in vectors["negative_signatures"]:
        ring = ring_named(vectors, v["ring"])
        args = (
            ring,
            bytes.fromhex(v["context"]),
            bytes.fromhex(v["message"]),
            bytes.fromhex(v["signature"]),
        )
        with pytest.raises(classes[v["error_class"]]) as info:
            verify(*args)
        assert info.value.kind == v["error_kind"], v["name"]
        assert verify_batch([args]) == [None]
    for v in vectors["negative_rings"]:
        with pytest.raises(classes[v["error_class"]]) as info:
            Ring([bytes.fromhex(p) for p in v["public_keys"]], max_size=v["max_size"])
        assert info.value.kind == v["error_kind"], v["name"]
        assert str(info.value) == v["detail"], v["name"]


# --------------------------------------------------------------------------
# Vote signatures: slot tags and the DLEQ proof (SPEC §4.2, §7, §8.2-§8.4)
# --------------------------------------------------------------------------

EPOCH = b"2026-W49"
SLOT = 2


def slot_base_msg(epoch: bytes, slot: int) -> bytes:
    return lp(epoch) + slot.to_bytes(4, "big")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16])
def test_vote_round_trip_every_index(n: int) -> None:
    keys, ring = keys_and_ring(60_000 + 100 * n, n)
    ctx = f"submission-{n}".encode()
    batch = []
    for pi in range(n):
        k = key_at(keys, ring, pi)
        for batchable in (False, True):
            msg = f"vote-{pi}-{batchable}".encode()
            sig = sign_vote(k, ring, ctx, EPOCH, SLOT, msg, batchable=batchable)
            assert len(sig) == ringcrypto.vote_signature_length(n, batchable)
            image, tag = verify_vote(ring, ctx, EPOCH, SLOT, msg, sig)
            assert image == k.key_image(ctx) == sig[1:33]
            assert tag == k.slot_tag(EPOCH, SLOT) == sig[33:65]
            batch.append((ring, ctx, EPOCH, SLOT, msg, sig))
    want = [verify_vote(*item) for item in batch]
    for threads in (None, 1, 2):
        assert verify_vote_batch(batch, threads=threads) == want


def test_slot_tag_properties() -> None:
    keys, ring = keys_and_ring(61_000, 4)
    k = keys[1]
    t = k.slot_tag(EPOCH, 0)
    assert len(t) == 32 and t == k.slot_tag(EPOCH, 0)
    assert t != k.slot_tag(EPOCH, 1) != k.slot_tag(b"2026-W50", 1)
    assert t != keys[2].slot_tag(EPOCH, 0)
    # Same (epoch, slot) on two submissions: same T (the rate-limit key),
    # different key images.
    a = verify_vote(ring, b"s1", EPOCH, 0, b"m", sign_vote(k, ring, b"s1", EPOCH, 0, b"m"))
    other = Ring([*ring.public_keys, SecretKey.from_seed(seed(61_999)).public_key])
    sig = sign_vote(k, other, b"s2", EPOCH, 0, b"x", batchable=True)
    b = verify_vote(other, b"s2", EPOCH, 0, b"x", sig)
    assert a[1] == b[1] == t and a[0] != b[0]
    assert k.slot_tag(b"", 2**32 - 1) != k.slot_tag(b"", 0)
    for bad in (-1, 2**32, 2**70):
        assert kind_of(MalformedInput, k.slot_tag, EPOCH, bad) == "bad-argument"
        assert kind_of(MalformedInput, sign_vote, k, ring, b"c", EPOCH, bad, b"m") == "bad-argument"
    for bad in ("1", 1.0, None, True):
        with pytest.raises(TypeError):
            k.slot_tag(EPOCH, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        k.slot_tag("epoch", 1)  # type: ignore[arg-type]
    # hedged signing; hazmat is deterministic
    assert sign_vote(k, ring, b"c", EPOCH, 0, b"m") != sign_vote(k, ring, b"c", EPOCH, 0, b"m")
    z = bytes(range(32))
    hz = ringcrypto.hazmat.sign_vote_with_randomness
    assert hz(k, ring, b"c", EPOCH, 0, b"m", z) == hz(k, ring, b"c", EPOCH, 0, b"m", z)
    assert kind_of(MalformedInput, hz, k, ring, b"c", EPOCH, 0, b"m", z[:31]) == "bad-length"
    outsider = SecretKey.from_seed(seed(61_998))
    assert kind_of(MalformedInput, sign_vote, outsider, ring, b"c", EPOCH, 0, b"m") == "not-in-ring"


def vote_tamper_cases(batchable: bool):
    n = 4
    keys, ring = keys_and_ring(62_000, n)
    sig = sign_vote(key_at(keys, ring, 1), ring, CTX, EPOCH, SLOT, MSG, batchable=batchable)
    other_pt = SecretKey.from_seed(seed(999)).public_key
    stolen = key_at(keys, ring, 0).slot_tag(EPOCH, SLOT)

    def alias(off: int) -> bytes:  # bit 255 set on a valid encoding
        return set_bytes(sig, off + 31, bytes([sig[off + 31] | 0x80]))

    def plus1(off: int) -> bytes:
        value = (int.from_bytes(sig[off : off + 32], "little") + 1) % ELL
        return set_bytes(sig, off, value.to_bytes(32, "little"))

    args = (ring, CTX, EPOCH, SLOT, MSG)
    cases = [
        ("message", (ring, CTX, EPOCH, SLOT, b"reject"), sig, InvalidSignature),
        ("context", (ring, b"other", EPOCH, SLOT, MSG), sig, InvalidSignature),
        ("epoch", (ring, CTX, b"2026-W50", SLOT, MSG), sig, InvalidSignature),
        ("slot", (ring, CTX, EPOCH, SLOT + 1, MSG), sig, InvalidSignature),
        ("stolen T", args, set_bytes(sig, 33, stolen), InvalidSignature),
        ("T other", args, set_bytes(sig, 33, other_pt), InvalidSignature),
        ("T identity", args, set_bytes(sig, 33, IDENTITY), MalformedInput),
        ("T bit-255 alias", args, alias(33), MalformedInput),
        ("T 2^255-1", args, set_bytes(sig, 33, MAX255), MalformedInput),
        ("I other", args, set_bytes(sig, 1, other_pt), InvalidSignature),
        ("I identity", args, set_bytes(sig, 1, IDENTITY), MalformedInput),
        ("I bit-255 alias", args, alias(1), MalformedInput),
        ("truncated", args, sig[:-1], MalformedInput),
        ("plain tag", args, set_bytes(sig, 0, b"\x01"), MalformedInput),
        (
            "other vote tag",
            args,
            set_bytes(sig, 0, b"\x11" if batchable else b"\x12"),
            MalformedInput,
        ),
    ]
    body = 161 if batchable else 129
    scalars = [("c_0", body)] + [(f"s_{i}", body + 32 + 32 * i) for i in range(n)]
    scalars += [("t", 129)] if batchable else [("e", 65), ("t", 97)]
    for name, off in scalars:
        cases.append((f"{name} + 1", args, plus1(off), InvalidSignature))
        cases.append((f"{name} = l", args, set_bytes(sig, off, ELL_BYTES), MalformedInput))
    if batchable:
        points = [("A", 65), ("A'", 97)]
        for i in range(n):
            points += [
                (f"L_{i}", body + 32 + 32 * n + 64 * i),
                (f"R_{i}", body + 64 + 32 * n + 64 * i),
            ]
        for name, off in points:
            cases.append((f"{name} other", args, set_bytes(sig, off, other_pt), InvalidSignature))
            cases.append((f"{name} bit-255 alias", args, alias(off), MalformedInput))
    return cases


@pytest.mark.parametrize("batchable", [False, True])
def test_vote_every_field_tampered(batchable: bool) -> None:
    cases = vote_tamper_cases(batchable)
    for name, args, sig, exc in cases:
        with pytest.raises(exc) as info:
            verify_vote(*args, sig)
        assert isinstance(info.value.kind, str) and info.value.kind, name
    # A pasted-in T changes the transcript: the ring breaks before the DLEQ.
    stolen_kind = kind_of(InvalidSignature, verify_vote, *cases[4][1], cases[4][2])
    assert stolen_kind == ("carried-point-mismatch" if batchable else "ring-not-closed")
    results = verify_vote_batch([(*args, sig) for _, args, sig, _ in cases], threads=2)
    assert results == [None] * len(cases)
    # errors=True: each failure is the class verify_vote raises for it (the worker's reason,
    # malformed or bad_signature, comes from the batch alone, with no second check).
    items = [(*args, sig) for _, args, sig, _ in cases]
    for threads in (1, 2):
        failures = verify_vote_batch(items, threads=threads, errors=True)
        got = [(name, type(f)) for (name, _, _, _), f in zip(cases, failures, strict=True)]
        assert got == [(name, exc) for name, _, _, exc in cases]
        assert all(isinstance(f.kind, str) and f.kind for f in failures)


def test_vote_batch_errors_keep_valid_results_and_name_a_bad_slot() -> None:
    keys, ring = keys_and_ring(62_500, 3)
    good = (ring, b"s1", EPOCH, SLOT, b"m", sign_vote(keys[0], ring, b"s1", EPOCH, SLOT, b"m"))
    slot = (*good[:3], 2**40, *good[4:])
    results = verify_vote_batch([good, slot], errors=True)
    assert results[0] == verify_vote(*good)
    assert isinstance(results[1], MalformedInput) and results[1].kind == "bad-argument"
    assert verify_vote_batch([good, slot]) == [results[0], None]


def test_vote_and_plain_signatures_do_not_mix() -> None:
    keys, ring = keys_and_ring(63_000, 3)
    vote = sign_vote(keys[0], ring, b"c", EPOCH, 1, b"m")
    plain = sign(keys[0], ring, b"c", b"m")
    assert kind_of(MalformedInput, verify, ring, b"c", b"m", vote) == "length"
    assert kind_of(MalformedInput, verify_vote, ring, b"c", EPOCH, 1, b"m", plain) == "length"
    assert verify_batch([(ring, b"c", b"m", vote)]) == [None]
    assert verify_vote_batch([(ring, b"c", EPOCH, 1, b"m", plain)]) == [None]


def test_verify_vote_batch_mixed_with_garbage_and_bad_items() -> None:
    keys3, ring3 = keys_and_ring(64_000, 3)
    keys8, ring8 = keys_and_ring(64_100, 8)
    items, expected = [], []
    rnd = random.Random(11)
    for k in range(150):
        ring, keys = (ring3, keys3) if k % 2 else (ring8, keys8)
        signer = keys[k % len(keys)]
        ctx, epoch, slot, msg = f"ctx-{k % 3}".encode(), b"ep-%d" % (k % 2), k % 3, b"m%d" % k
        sig = sign_vote(signer, ring, ctx, epoch, slot, msg, batchable=k % 4 != 0)
        mode = k % 7
        if mode == 1:  # A (batchable) or e (compact) flipped: only the DLEQ catches it
            sig = set_bytes(sig, 65, bytes([sig[65] ^ 1]))
        elif mode == 3:
            sig = bytes(rnd.randrange(256) for _ in range(len(sig)))
        elif mode == 5:
            slot += 1
        items.append((ring, ctx, epoch, slot, msg, sig))
        ok = mode in (0, 2, 4, 6)
        expected.append((signer.key_image(ctx), signer.slot_tag(epoch, slot)) if ok else None)
    for threads in (None, 1, 2, 4):
        assert verify_vote_batch(items, threads=threads) == expected
    assert verify_vote_batch([]) == []
    assert verify_vote_batch(iter(items[:4])) == expected[:4]
    # An out-of-range slot is rejected (None) like any malformed item.
    assert verify_vote_batch([(*items[0][:3], -1, *items[0][4:]), items[0]]) == [None, expected[0]]
    assert verify_vote_batch([(*items[0][:3], 2**32, *items[0][4:])]) == [None]
    with pytest.raises(ValueError):
        verify_vote_batch(items, threads=0)
    for bad in (
        (ring3, b"c", EPOCH, 1, b"m"),
        (ring3, b"c", EPOCH, "1", b"m", b"s"),
        (ring3, b"c", "e", 1, b"m", b"s"),
        (b"ring", b"c", EPOCH, 1, b"m", b"s"),
        (ring3, b"c", EPOCH, 1.0, b"m", b"s"),
    ):
        with pytest.raises(TypeError):
            verify_vote_batch([bad])  # type: ignore[list-item]


def test_verify_vote_batch_releases_the_gil() -> None:
    keys, ring = keys_and_ring(65_000, 16)
    items = [
        (
            ring,
            b"c",
            EPOCH,
            i % 3,
            b"%d" % i,
            sign_vote(keys[i % 16], ring, b"c", EPOCH, i % 3, b"%d" % i, batchable=True),
        )
        for i in range(300)
    ]
    took: list[float] = []

    def work() -> None:
        t0 = time.perf_counter()
        verify_vote_batch(items, threads=1)
        took.append(time.perf_counter() - t0)

    t = threading.Thread(target=work)
    last, max_gap = time.perf_counter(), 0.0
    t.start()
    while t.is_alive():
        now = time.perf_counter()
        max_gap, last = max(max_gap, now - last), now
    max_gap = max(max_gap, time.perf_counter() - last)
    t.join()
    assert took and took[0] > 0.02
    assert max_gap < 0.5 * took[0], (max_gap, took[0])


def test_thread_pools_are_bounded() -> None:
    # One pool per distinct threads=N used to be kept forever (40 values
    # left 821 threads). Now at most 4 pools / MAX_THREADS threads are cached.
    keys, ring = keys_and_ring(66_000, 2)
    item = (ring, b"c", b"m", sign(keys[0], ring, b"c", b"m", batchable=True))
    for n in range(1, 41):
        assert verify_batch([item], threads=n) == [keys[0].key_image(b"c")]
    deadline = time.monotonic() + 20

    def tasks() -> int:
        return len(os.listdir("/proc/self/task"))

    while tasks() > 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tasks() <= 200, tasks()


def test_vectors_slot_tags(vectors: dict) -> None:
    keys = vectors["keys"]
    assert len(vectors["slot_tags"]) >= 12
    for v in vectors["slot_tags"]:
        key = SecretKey.from_bytes(bytes.fromhex(keys[v["key"]]["secret"]))
        epoch = bytes.fromhex(v["epoch"])
        assert key.slot_tag(epoch, v["slot"]).hex() == v["slot_tag"]
        base = ringcrypto.hash_to_group(slot_base_msg(epoch, v["slot"]), b"ringtally-v2:slot-base")
        assert base.hex() == v["slot_base"]


def test_vectors_vote_signatures(vectors: dict) -> None:
    keys = vectors["keys"]
    sizes = set()
    for v in vectors["vote_signatures"]:
        ring = ring_named(vectors, v["ring"])
        sizes.add(len(ring))
        key = SecretKey.from_bytes(bytes.fromhex(keys[v["signer_key"]]["secret"]))
        assert ring.index(key.public_key) == v["signer_index"]
        z = hashlib.sha512(f"ringtally-v2 test z {v['randomness_label']}".encode()).digest()[:32]
        assert z.hex() == v["randomness"]
        ctx, epoch, msg = (bytes.fromhex(v[f]) for f in ("context", "epoch", "message"))
        sig = ringcrypto.hazmat.sign_vote_with_randomness(
            key, ring, ctx, epoch, v["slot"], msg, z, batchable=v["format"] == "batchable"
        )
        assert sig.hex() == v["signature"]
        want = (bytes.fromhex(v["key_image"]), bytes.fromhex(v["slot_tag"]))
        assert verify_vote(ring, ctx, epoch, v["slot"], msg, sig) == want
        assert verify_vote_batch([(ring, ctx, epoch, v["slot"], msg, sig)]) == [want]
    assert sizes == {1, 2, 3, 16}


def test_vectors_vote_scalar_side_recomputed_in_python(vectors: dict) -> None:
    """SPEC §7 vote transcript, round challenges, nonces (incl. beta = k_{n+1})
    and the DLEQ response, from hashlib only."""
    keys = vectors["keys"]
    for v in vectors["vote_signatures"]:
        ring = ring_named(vectors, v["ring"])
        n, pi = len(ring), v["signer_index"]
        sig = bytes.fromhex(v["signature"])
        batchable = v["format"] == "batchable"
        x_bytes = bytes.fromhex(keys[v["signer_key"]]["secret"])
        x = int.from_bytes(x_bytes, "little")
        ctx, epoch, msg = (bytes.fromhex(v[f]) for f in ("context", "epoch", "message"))
        image, tag = sig[1:33], sig[33:65]
        body = 161 if batchable else 129
        c0 = int.from_bytes(sig[body : body + 32], "little")
        s = [
            int.from_bytes(sig[body + 32 + 32 * i : body + 64 + 32 * i], "little") for i in range(n)
        ]
        tr = hashlib.sha512(
            lp(b"ringtally-v2:vote-challenge")
            + lp(ctx)
            + ring.digest
            + image
            + lp(epoch)
            + v["slot"].to_bytes(4, "big")
            + tag
            + lp(msg)
        ).digest()
        nonce_seed = hashlib.sha512(
            lp(b"ringtally-v2:nonce-seed") + x_bytes + bytes.fromhex(v["randomness"]) + tr
        ).digest()
        k = [h_s(b"ringtally-v2:nonce", nonce_seed + j.to_bytes(4, "big")) for j in range(n + 2)]
        for i in range(n):
            if i != pi:
                assert s[i] == k[i + 1], f"decoy response s_{i}"
        t = int.from_bytes(sig[129:161] if batchable else sig[97:129], "little")
        if batchable:
            lr = sig[body + 32 + 32 * n :]
            c = [c0]
            for i in range(n):
                c.append(h_s(b"ringtally-v2:round", tr + lr[64 * i : 64 * i + 64]))
            assert c[n] == c0, "ring closes over carried L/R"
            assert s[pi] == (k[0] - c[pi] * x) % ELL, "s_pi = alpha - c_pi * x"
            e = h_s(b"ringtally-v2:dleq", tr + sig[65:129])
        else:
            e = int.from_bytes(sig[65:97], "little")
        assert t == (k[n + 1] - e * x) % ELL, "t = beta - e * x with beta = k_{n+1}"


def test_vectors_negative_votes(vectors: dict) -> None:
    classes = {"MalformedInput": MalformedInput, "InvalidSignature": InvalidSignature}
    negs = vectors["negative_vote_signatures"]
    assert len(negs) >= 25
    names = " ".join(v["name"] for v in negs)
    for needle in ("bit 255", "stolen slot tag", "slot altered", "epoch altered"):
        assert needle in names
    for v in negs:
        ring = ring_named(vectors, v["ring"])
        args = (
            ring,
            bytes.fromhex(v["context"]),
            bytes.fromhex(v["epoch"]),
            v["slot"],
            bytes.fromhex(v["message"]),
            bytes.fromhex(v["signature"]),
        )
        with pytest.raises(classes[v["error_class"]]) as info:
            verify_vote(*args)
        assert info.value.kind == v["error_kind"], v["name"]
        assert verify_vote_batch([args]) == [None]
