"""The witness process: ballots, rejections and heads in, co-signatures and alerts out.

It reads the ballots, rejections (a refused well-formed vote is a leaf too) and
heads topics from the beginning (a group of its own,
nothing committed: its state is rebuilt at every start, so a restart judges
every head again and its outputs are idempotent), feeds
:class:`~connectors.witness.core.Witness`, and

* for a head it agrees with, sends a :class:`~models.log.WitnessCosignature`
  (its own key, ``<data_dir>/witness.key`` or ``RINGTALLY_WITNESS_KEY_FILE``) to
  the compacted ``<prefix>.witness`` topic;
* for a disagreement, logs ``WITNESS DISAGREES`` at ERROR, counts it in
  ``ringtally_witness_disagreements_total{reason}`` (served on
  ``RINGTALLY_METRICS_PORT`` when set) and inserts a ``log_alerts`` row.

Nothing it reads or writes names a reviewer: leaves are vote digests.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry, Counter, start_http_server
from pydantic import ValidationError

from connectors.postgres.db import connect
from connectors.sdk.producer import kafka_config
from connectors.sdk.receipt import ReceiptInvalid, verify_head
from models.log import WITNESS_CONTEXT, SignedHead, WitnessCosignature
from models.outputs import Ballot, Rejection
from streams.keyfile import load_service_key
from streams.settings import Settings
from streams.topics import ensure_topics

from .core import Disagreement, Witness

__all__ = ["WitnessProcess"]

log = logging.getLogger("ringtally.witness")

_ALERT = """
    INSERT INTO log_alerts (submission_id, tree_size, root_hash, reason, detail)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (submission_id, tree_size, root_hash, reason) DO NOTHING"""


class WitnessProcess:
    def __init__(self, settings: Settings, *, log_key: bytes) -> None:
        import ringcrypto

        self.settings = settings
        path = settings.witness_key_path
        self._key = load_service_key(
            path, configured=settings.witness_key_file is not None, what="witness"
        )
        self.public_key: bytes = self._key.public_key
        self._ring = ringcrypto.Ring([self.public_key])
        self.log_key = log_key
        self.witness = Witness(self._signed_by_log)
        self.registry = CollectorRegistry()
        self.cosigned = Counter(
            "ringtally_witness_cosigned",
            "Heads the witness recomputed and co-signed.",
            registry=self.registry,
        )
        self.disagreements = Counter(
            "ringtally_witness_disagreements",
            "Heads or ballots the witness could not reconcile, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._topics = {
            settings.topic("ballots"): "ballot",
            settings.topic("rejections"): "rejection",
            settings.topic("heads"): "head",
        }

    def _signed_by_log(self, head: SignedHead) -> bool:
        try:
            verify_head(head, self.log_key)
        except ReceiptInvalid:
            return False
        return True

    def cosign(self, head: SignedHead) -> WitnessCosignature:
        import ringcrypto

        signature = ringcrypto.sign(self._key, self._ring, WITNESS_CONTEXT, head.head_bytes())
        return WitnessCosignature(
            submission_id=head.submission_id,
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            log_key=head.log_key,
            witness_key=self.public_key.hex(),
            closed_ms=head.closed_ms,
            signature=base64.b64encode(signature).decode("ascii"),
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        await asyncio.to_thread(ensure_topics, s, ["ballots", "rejections", "heads", "witness"])
        if s.metrics_port:
            start_http_server(s.metrics_port, addr=s.web_host, registry=self.registry)
        consumer = Consumer(
            {
                **kafka_config(s),
                "group.id": f"{s.topic_prefix}-witness-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        producer = Producer(kafka_config(s))
        consumer.subscribe(list(self._topics))
        conn = await connect(s)
        log.info(
            "witness %s checking heads of log key %s", self.public_key.hex(), self.log_key.hex()
        )
        try:
            while not stop.is_set():
                messages = await asyncio.to_thread(consumer.consume, 500, 0.5)
                for msg in messages:
                    if msg.error() is None and msg.value() is not None:
                        await self._one(self._topics[msg.topic()], msg.value(), producer, conn)
                producer.poll(0)
        finally:
            consumer.close()
            producer.flush(10)
            await conn.close()

    async def _one(self, kind: str, value: bytes, producer: Any, conn: Any) -> None:
        try:
            if kind == "ballot":
                agreed, disagreed = self.witness.ballot(Ballot.model_validate_json(value))
            elif kind == "rejection":
                agreed, disagreed = self.witness.rejection(Rejection.model_validate_json(value))
            else:
                agreed, disagreed = self.witness.head(SignedHead.model_validate_json(value))
        except ValidationError as exc:
            log.warning("witness: unreadable %s record skipped: %s", kind, exc.errors()[0]["msg"])
            return
        for head in agreed:
            cosignature = self.cosign(head)
            producer.produce(
                self.settings.topic("witness"),
                key=head.submission_id.encode(),
                value=cosignature.to_json(),
            )
            self.cosigned.inc()
        for d in disagreed:
            await self._alert(d, conn)

    async def _alert(self, d: Disagreement, conn: Any) -> None:
        log.error(
            "WITNESS DISAGREES: submission %s at size %d (%s): %s",
            d.submission_id,
            d.tree_size,
            d.reason,
            d.detail,
        )
        self.disagreements.labels(d.reason).inc()
        await conn.execute(_ALERT, d.submission_id, d.tree_size, d.root_hash, d.reason, d.detail)
