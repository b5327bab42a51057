"""The Kafka jars: resolved by Maven from the checked-in pom, cached per version.

No tarball: Kafka's own distribution is not on a package registry, its jars
are (Maven Central). ``pom.xml`` beside this file pins the version; the jars
land in ``<cache>/kafka-<version>/libs``. Maven copies into ``libs.partial``
first and the dir is renamed only after a complete copy, then a ``.complete``
marker holding the pom's hash is written: a half-done or outdated copy is
never used, it is redone.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

from ..binaries import find_mvn
from ..errors import StackError
from ..process import file_lock, tail_lines
from ..service import Report

__all__ = ["POM", "ensure_libs", "kafka_version", "libs_dir", "libs_ready", "version_dir"]

POM = Path(__file__).with_name("pom.xml")
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
FETCH_TIMEOUT = 900.0


@lru_cache(maxsize=4)
def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins (its ``kafka.version`` property)."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _NS)
    if node is None or not (node.text or "").strip():
        raise StackError("kafka", f"{pom} has no <kafka.version> property")
    return node.text.strip()


def _pom_hash(pom: Path = POM) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def version_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{kafka_version()}"


def libs_dir(cache_dir: Path) -> Path:
    """Where the jars for the pinned version live (complete or not)."""
    return version_dir(cache_dir) / "libs"


def libs_ready(cache_dir: Path) -> bool:
    """True when a complete copy made from the current pom is cached."""
    marker = version_dir(cache_dir) / ".complete"
    try:
        return marker.read_text().strip() == _pom_hash() and libs_dir(cache_dir).is_dir()
    except OSError:
        return False


def ensure_libs(cache_dir: Path, report: Report | None = None) -> Path:
    """Return the jar dir, running Maven first when it is missing or incomplete."""
    if libs_ready(cache_dir):
        return libs_dir(cache_dir)
    vdir = version_dir(cache_dir)
    vdir.mkdir(parents=True, exist_ok=True)
    with file_lock(vdir / ".fetch.lock"):  # another process may be fetching right now
        if libs_ready(cache_dir):
            return libs_dir(cache_dir)
        mvn = find_mvn()
        version = kafka_version()
        if report:
            report("kafka", f"fetching Kafka {version} jars from Maven Central (once)")
        marker, libs, partial = vdir / ".complete", vdir / "libs", vdir / "libs.partial"
        log = vdir / "mvn.log"
        marker.unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        argv = [
            str(mvn),
            "-B",
            "-q",
            "-f",
            str(POM),
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ]
        try:
            with open(log, "wb") as out:
                proc = subprocess.run(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=FETCH_TIMEOUT,
                )
        except subprocess.TimeoutExpired:
            raise StackError(
                "kafka",
                f"Maven did not fetch the Kafka jars within {FETCH_TIMEOUT:.0f}s",
                fix="check access to Maven Central and retry",
                log_file=log,
            ) from None
        if proc.returncode != 0:
            errors = [ln for ln in tail_lines(log, 200) if "[ERROR]" in ln]
            first = errors[0].replace("[ERROR]", "").strip()[:200] if errors else ""
            raise StackError(
                "kafka",
                f"fetching the Kafka {version} jars with Maven failed (exit {proc.returncode})"
                + (f": {first}" if first else ""),
                fix="check access to Maven Central and retry",
                log_file=log,
            )
        for jar in (f"kafka_2.13-{version}.jar", f"kafka-tools-{version}.jar"):
            if not (partial / jar).is_file():
                raise StackError(
                    "kafka", f"Maven finished but {jar} is missing", fix="retry", log_file=log
                )
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(_pom_hash() + "\n")
        return libs
