"""Which ringtally this is: the package's version and the Rust core's, in one place.

``ringtally --version`` prints them and every ``/metrics`` carries them as
``ringtally_build_info`` (:func:`streams.metrics.register_build_info`).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["versions"]


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """``{"version": ringtally's, "ringcrypto": the core's, "spec": its signature spec}``."""
    from importlib.metadata import PackageNotFoundError, version

    import ringcrypto

    try:
        mine = version("ringtally")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, never installed
        mine = "unknown"
    return {"version": mine, "ringcrypto": ringcrypto.__version__, "spec": ringcrypto.SPEC_VERSION}
