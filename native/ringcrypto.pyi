"""ringtally-v2 linkable ring signatures (bLSAG over ristretto255) and vote
signatures with issuer-free per-epoch slot tags (DLEQ).

Normative spec: native/SPEC.md. All binary arguments must be ``bytes``;
``slot`` is an ``int`` in ``0..2**32`` (out of range: ``MalformedInput`` with
kind ``bad-argument``; not an int: ``TypeError``).
Errors: ``MalformedInput`` (bad encoding / validation) and
``InvalidSignature`` (well-formed, does not verify), both ``ValueError``
subclasses with a ``kind`` attribute naming the rule (SPEC §5, §6.5, §7.4, §8).

Two schemes:

* plain ring signatures — ``sign`` / ``verify`` / ``verify_batch``: one key
  image ``I = x·H(context)`` per key per context;
* vote signatures — ``sign_vote`` / ``verify_vote`` / ``verify_vote_batch``:
  the same plus a slot tag ``T = x·G(epoch, slot)`` proven (DLEQ) to belong to
  the same ring member. The caller enforces ``slot < k`` and rejects a vote
  whose ``I`` (same submission) or ``T`` (same epoch and slot) it has seen.
  Both are at fixed offsets: ``I = sig[1:33]``, ``T = sig[33:65]``.
"""

from collections.abc import Iterable, Sequence
from typing import Final, final

__version__: Final[str]
SPEC_VERSION: Final[str]
MAX_RING_SIZE_DEFAULT: Final[int]
MAX_RING_SIZE_LIMIT: Final[int]
MAX_THREADS: Final[int]

class MalformedInput(ValueError):
    """Input rejected by strict decoding or validation."""

    kind: str

class InvalidSignature(ValueError):
    """Well-formed signature whose ring equations do not hold."""

    kind: str

class InternalError(RuntimeError):
    """A Rust panic caught at the boundary (a bug; please report)."""

@final
class SecretKey:
    """A signing key. ``repr`` is redacted and instances cannot be pickled."""

    @staticmethod
    def generate() -> SecretKey:
        """A fresh key from the OS CSPRNG."""

    @staticmethod
    def from_seed(seed: bytes) -> SecretKey:
        """Derive from exactly 32 seed bytes: x = H_s("ringtally-v2:keygen", seed)."""

    @staticmethod
    def from_bytes(secret: bytes) -> SecretKey:
        """Load a canonical, non-zero 32-byte scalar (e.g. from a key file)."""

    def export_secret(self) -> bytes:
        """The raw 32-byte secret scalar: the only way secret bytes leave Rust."""

    @property
    def public_key(self) -> bytes:
        """32-byte ristretto255 encoding of x·B."""

    def key_image(self, context: bytes) -> bytes:
        """32-byte key image x·H(context); identical whatever ring is used."""

    def slot_tag(self, epoch: bytes, slot: int) -> bytes:
        """32-byte slot tag x·G(epoch, slot) (SPEC §4.2).

        The same for every ring, context and message: a second vote in the
        same epoch and slot repeats it. ``slot`` must be in ``0..2**32``.
        """

@final
class Ring:
    """A validated ring, sorted canonically, with decoded points cached."""

    def __new__(cls, public_keys: Iterable[bytes], *, max_size: int = 1024) -> Ring: ...
    @property
    def digest(self) -> bytes:
        """64-byte ring digest (SPEC §5)."""

    @property
    def public_keys(self) -> list[bytes]:
        """Members in canonical (ascending byte) order."""

    @property
    def max_size(self) -> int: ...
    @property
    def memory_size(self) -> int:
        """Approximate bytes held by this ring."""

    def index(self, public_key: bytes) -> int:
        """Canonical index of ``public_key``; ``ValueError`` if absent."""

    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def sign(
    key: SecretKey, ring: Ring, context: bytes, message: bytes, *, batchable: bool = False
) -> bytes:
    """Sign anonymously as a member of ``ring``; MalformedInput if the key is not a member."""

def verify(ring: Ring, context: bytes, message: bytes, signature: bytes) -> bytes:
    """Return the 32-byte key image, or raise InvalidSignature / MalformedInput."""

def verify_batch(
    items: Iterable[tuple[Ring, bytes, bytes, bytes]], *, threads: int | None = None
) -> list[bytes | None]:
    """Key image or None per ``(ring, context, message, signature)`` item.

    Runs without the GIL across ``threads`` cores (default: all; an explicit
    count uses a dedicated pool, at most 4 pools / ``MAX_THREADS`` threads are
    cached). Batchable signatures share one randomized combined check per
    chunk, with per-signature checks if it fails; compact ones are verified
    singly. Wrong item *types* raise TypeError.
    """

def sign_vote(
    key: SecretKey,
    ring: Ring,
    context: bytes,
    epoch: bytes,
    slot: int,
    message: bytes,
    *,
    batchable: bool = False,
) -> bytes:
    """Sign a vote anonymously as a member of ``ring`` (SPEC §7).

    Binds ``context`` (submission id), ``epoch``, ``slot`` and ``message``;
    carries ``I = key.key_image(context)`` and ``T = key.slot_tag(epoch, slot)``.
    Length ``vote_signature_length(len(ring), batchable)``. MalformedInput if
    the key is not a member (kind ``not-in-ring``) or ``slot`` is out of range.
    """

def verify_vote(
    ring: Ring, context: bytes, epoch: bytes, slot: int, message: bytes, signature: bytes
) -> tuple[bytes, bytes]:
    """Return ``(key_image, slot_tag)`` (32 bytes each), or raise.

    MalformedInput (decoding, SPEC §7.4: ``length``, ``unknown-tag``,
    ``tag-mismatch``, ``non-canonical-scalar``, ``identity-key-image``,
    ``identity-slot-tag``, ``invalid-point``, ``bad-argument``) or
    InvalidSignature (``ring-not-closed``, ``carried-point-mismatch``,
    ``dleq-failed``).
    """

def verify_vote_batch(
    items: Iterable[tuple[Ring, bytes, bytes, int, bytes, bytes]],
    *,
    threads: int | None = None,
    errors: bool = False,
) -> list[tuple[bytes, bytes] | None | MalformedInput | InvalidSignature]:
    """``(key_image, slot_tag)`` or None per
    ``(ring, context, epoch, slot, message, signature)`` item; with
    ``errors=True`` a failed item is the exception ``verify_vote`` would raise
    for it (``MalformedInput`` or ``InvalidSignature``, its ``kind`` set; a
    failed combined check: ``batch-equation``) instead of None, so the caller
    needs no second verification to say why (a forged vote costs one check).

    Same scheduling as ``verify_batch`` (GIL released, batchable signatures
    share one randomized combined check per chunk, compact ones verified
    singly); accepts exactly what ``verify_vote`` accepts, up to 2^-128.
    An out-of-range slot gives None; wrong item *types* raise TypeError.
    """

def vote_signature_length(n: int, batchable: bool = False) -> int:
    """Bytes in a vote signature for a ring of ``n``: 161+32n (compact) or 193+96n."""

def hash_to_group(message: bytes, dst: bytes) -> bytes:
    """RFC 9380 hash_to_ristretto255 (expand_message_xmd SHA-512); 32 bytes."""

def expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 expand_message_xmd with SHA-512."""

def signature_length(n: int, batchable: bool = False) -> int:
    """Bytes in a signature for a ring of ``n``: 65+32n (compact) or 65+96n."""

@final
class _HazmatModule:
    """Type of the ``ringcrypto.hazmat`` submodule (maturin ships one stub
    file for a pure-Rust module, so the submodule is described here)."""

    @staticmethod
    def sign_with_randomness(
        key: SecretKey,
        ring: Ring,
        context: bytes,
        message: bytes,
        randomness: bytes,
        *,
        batchable: bool = False,
    ) -> bytes:
        """HAZARDOUS, test vectors only: sign with caller-chosen 32-byte randomness."""

    @staticmethod
    def sign_vote_with_randomness(
        key: SecretKey,
        ring: Ring,
        context: bytes,
        epoch: bytes,
        slot: int,
        message: bytes,
        randomness: bytes,
        *,
        batchable: bool = False,
    ) -> bytes:
        """HAZARDOUS, test vectors only: ``sign_vote`` with caller-chosen randomness."""

hazmat: _HazmatModule

__all__: Sequence[str]
