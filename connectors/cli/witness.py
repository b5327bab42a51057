"""``ringtally witness``: the log witness process (connectors/witness/)."""

from __future__ import annotations

import click

from ._common import get_settings, one_line_errors
from .sink import _logging, _run

__all__ = ["witness"]


@click.command("witness")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@one_line_errors
def witness(verbose: bool) -> None:
    """Recompute every submission log from the ballots topic; co-sign each head that agrees
    (<prefix>.witness), alert on each that does not (log line WITNESS DISAGREES, metric
    ringtally_witness_disagreements_total on RINGTALLY_METRICS_PORT, a log_alerts row).
    Runs until SIGTERM or Ctrl-C; trusts the log key RINGTALLY_LOG_PUBLIC_KEY (else
    <data_dir>/log.pub) and signs with RINGTALLY_WITNESS_KEY_FILE (else
    <data_dir>/witness.key, created on first use)."""
    from connectors.sdk.receipt import trusted_log_key
    from connectors.witness.run import WitnessProcess

    _logging(verbose)
    settings = get_settings()
    process = WitnessProcess(settings, log_key=trusted_log_key(settings))
    _run(process.run)
