"""ringtally-v1 linkable ring signatures (bLSAG over ristretto255).

Normative spec: native/SPEC.md. All binary arguments must be ``bytes``.
Errors: ``MalformedInput`` (bad encoding / validation) and
``InvalidSignature`` (well-formed, does not verify), both ``ValueError``
subclasses with a ``kind`` attribute naming the rule (SPEC §5, §7, §8).
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
        """Derive from exactly 32 seed bytes: x = H_s("ringtally-v1:keygen", seed)."""

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

    Runs without the GIL across ``threads`` cores (default: all). Batchable
    signatures share one randomized combined check per thread; compact ones
    are verified singly. Wrong item *types* raise TypeError.
    """

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

hazmat: _HazmatModule

__all__: Sequence[str]
