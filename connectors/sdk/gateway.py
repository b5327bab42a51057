"""The HTTP vote client: sign locally, publish through a ringtally gateway.

:class:`GatewayVoter` is :class:`~.vote.VoteClient`'s counterpart for voters
without Kafka access: the same :class:`~.voter.Voter` picks and records the
slot, the same :func:`~.vote.build_vote` signs, and the signed
:class:`~models.VoteCast` is POSTed to ``/api/v1/votes``. The secret key never
leaves this process; the gateway sees only what the votes topic carries.

The ring comes from the gateway (``GET /api/v1/rings/{id}``), so a gateway
could serve a ring of its own making (say, of one real member and keys it
holds) to learn who signs. The client therefore signs only with a ring
version the registrar signed: one of ``registrar_keys`` (default: the keys the
local settings trust, ``RINGTALLY_REGISTRAR_PUBLIC_KEYS`` or
``<data_dir>/registrar.pub``), and refuses to vote when it knows none.

Standard library HTTP (``urllib``): no extra dependency, one request at a time.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from models.control import Ring
from models.encoding import REGISTRAR_CONTEXT
from models.fields import VoteType
from models.votes import VoteCast
from streams.errors import ServiceUnavailable, UsageProblem

from .errors import NotFound
from .vote import build_vote
from .voter import Voter

__all__ = ["GatewayError", "GatewayVoter"]


class GatewayError(UsageProblem):
    """The gateway refused the request (4xx): the message carries its reason."""


class GatewayVoter:
    """Sign votes with a reviewer key and publish them through the HTTP gateway.

    >>> voter = GatewayVoter("http://127.0.0.1:8080", Voter.from_key_file("alice.key"))
    >>> voter.vote("ring-1", submission_id="sub-1", vote_type="approve", wait=30)
    {'vote_id': '…', 'status': 'counted', …}

    ``key``: a :class:`~.voter.Voter` or a ``ringcrypto.SecretKey`` (used slots then kept
    in memory).
    """

    def __init__(
        self,
        base_url: str,
        key: Any,
        *,
        registrar_keys: list[bytes] | None = None,
        batchable: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.voter = key if isinstance(key, Voter) else Voter(key)
        self.batchable = batchable
        self.timeout = timeout
        if registrar_keys is None:
            from streams.settings import get_settings

            from .reader import trusted_registrar_keys

            registrar_keys = trusted_registrar_keys(get_settings())
        self.registrar_keys = list(registrar_keys)

    # --- HTTP --------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"null")
            except ValueError:
                detail = None
            detail = detail.get("detail", detail) if isinstance(detail, dict) else detail
            if exc.code == 404:
                raise NotFound(f"gateway: {detail}") from None
            if exc.code >= 500:
                raise ServiceUnavailable(f"gateway answered {exc.code}: {detail}") from None
            raise GatewayError(f"gateway refused the request ({exc.code}): {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailable(
                f"gateway at {self.base_url} unreachable: {reason}",
                fix="start one with 'ringtally gateway'",
            ) from None

    # --- rings ---------------------------------------------------------------------------

    def ring(self, ring_id: str, version: int | None = None) -> Ring:
        """The registrar-signed ring version to sign against: ``version``, or the one in
        force now (the latest when none is in force yet)."""
        _, body = self._request("GET", f"/api/v1/rings/{urllib.parse.quote(ring_id, safe='')}")
        versions = {v["version"]: v for v in body["versions"]}
        wanted = version or body.get("version_in_force") or body["latest_version"]
        if wanted not in versions:
            raise NotFound(f"ring {ring_id!r} has no version {wanted}")
        record = {k: v for k, v in versions[wanted].items() if k != "effective_ms"}
        ring = Ring.model_validate_json(json.dumps(record))
        if ring.ring_id != ring_id or ring.version != wanted:
            # a gateway must not swap in another (signed) ring the voter is also in
            raise GatewayError(
                f"gateway answered ring {ring.ring_id!r} version {ring.version} "
                f"for ring {ring_id!r} version {wanted}"
            )
        self._check_signed(ring)
        return ring

    def _check_signed(self, ring: Ring) -> None:
        import ringcrypto

        if not self.registrar_keys:
            raise UsageProblem(
                "no registrar public key to check the gateway's ring against",
                fix="set RINGTALLY_REGISTRAR_PUBLIC_KEYS or pass registrar_keys=",
            )
        signature = ring.registrar_signature_bytes()
        if signature is not None:
            for key in self.registrar_keys:
                try:
                    ringcrypto.verify(
                        ringcrypto.Ring([key]), REGISTRAR_CONTEXT, ring.signing_bytes(), signature
                    )
                    return
                except (ringcrypto.MalformedInput, ringcrypto.InvalidSignature):
                    continue
        raise UsageProblem(
            f"ring {ring.ring_id!r} version {ring.version} from the gateway is not signed by a "
            "trusted registrar key: not signing with it"
        )

    # --- votes ---------------------------------------------------------------------------

    def sign(
        self,
        ring_id: str,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        slot: int | None = None,
        ring_version: int | None = None,
    ) -> VoteCast:
        """A signed vote, not posted (its slot is recorded as used all the same)."""
        ring = self.ring(ring_id, ring_version)
        slot = self.voter.take_slot(ring.epoch, ring.votes_per_epoch, slot)
        return build_vote(
            self.voter.key,
            ring,
            submission_id=submission_id,
            ring_id=ring.ring_id,
            ring_version=ring.version,
            vote_type=vote_type,
            epoch=ring.epoch,
            slot=slot,
            batchable=self.batchable,
        )

    def post(self, vote: VoteCast, *, wait: float | None = None) -> dict[str, Any]:
        """POST a signed vote; with ``wait`` the answer carries its outcome
        (``status``: ``counted``, ``rejected`` with ``reason``, or ``pending``)."""
        query = "" if wait is None else f"?wait={wait:g}"
        timeout = self.timeout + (wait or 0)
        _, body = self._request("POST", f"/api/v1/votes{query}", vote.to_json(), timeout)
        return body

    def vote(
        self,
        ring_id: str,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        slot: int | None = None,
        ring_version: int | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Sign and post one vote (see :meth:`post`)."""
        vote = self.sign(
            ring_id,
            submission_id=submission_id,
            vote_type=vote_type,
            slot=slot,
            ring_version=ring_version,
        )
        return self.post(vote, wait=wait)
