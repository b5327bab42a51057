"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

The page is opened once; votes are then posted through the gateway, and the
test waits for the page's row of that submission to show the new tally, with
no reload (a marker set on ``window`` must survive). It fails when the page
does not subscribe to the SSE stream, renders the wrong counts, or reloads.
A screenshot is saved (``RINGTALLY_DASHBOARD_SCREENSHOT`` names where; the
default is the test's tmp dir; docs/dashboard.png was made this way).

Never downloads a browser: Playwright launches ``/usr/bin/chromium`` (``make``
installs Debian's ``chromium``; this test installs it itself when it is
missing and it runs as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import ringcrypto
from connectors.sdk import Admin, build_vote
from tests.fixtures.gateway import gateway_stack, http_json  # noqa: F401

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail(f"{CHROMIUM} is missing: run 'make deps' (apt-get install chromium)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    return CHROMIUM


def test_the_dashboard_shows_a_tally_change_live(gateway_stack, tmp_path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    settings, gateway = gateway_stack
    admin = Admin(settings)
    tag = uuid.uuid4().hex[:6]
    genre, epoch = f"poetry-{tag}", 3
    keys = [ringcrypto.SecretKey.generate() for _ in range(5)]
    ring = admin.register_ring(
        f"ring-{tag}",
        genre=genre,
        epoch=epoch,
        public_keys=[k.public_key for k in keys],
        votes_per_epoch=4,
    )
    subs = [f"sub-{tag}-{n}" for n in ("a", "b", "c")]
    for sub in subs:
        admin.register_submission(sub, genre=genre, epoch=epoch)

    def post(key, sub: str, slot: int, vote_type: str, forge: bool = False) -> dict:
        vote = json.loads(
            build_vote(
                key,
                ring,
                submission_id=sub,
                ring_id=ring.ring_id,
                ring_version=1,
                vote_type=vote_type,
                epoch=epoch,
                slot=slot,
            ).to_json()
        )
        if forge:
            vote["vote_type"] = "approve" if vote_type != "approve" else "reject"
        status, body = http_json(
            "POST", f"{gateway.url}/api/v1/votes?wait=30", json.dumps(vote).encode(), timeout=60
        )
        assert status == 200, body
        return body

    # some history before the page opens: a decided submission, an escalation, a forgery
    for i, vote_type in enumerate(["approve", "approve", "approve"]):
        assert post(keys[i], subs[1], 0, vote_type)["status"] == "counted"
    for i in range(3):
        assert post(keys[i], subs[2], 1, "escalate")["status"] == "counted"
    assert post(keys[3], subs[2], 1, "reject", forge=True)["status"] == "rejected"
    assert post(keys[0], subs[0], 2, "reject")["status"] == "counted"

    screenshot = Path(os.environ.get("RINGTALLY_DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=_chromium(),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(gateway.url + "/", wait_until="domcontentloaded")
            expect(page.locator("#status")).to_have_text("live", timeout=15_000)
            row = page.locator(f'#tallies tr[data-submission="{subs[0]}"]')
            expect(row.locator("td.total")).to_have_text("1", timeout=15_000)
            expect(row.locator("td.genre")).to_have_text(genre)
            page.evaluate("window.__sameDocument = true")

            assert post(keys[1], subs[0], 3, "reject")["status"] == "counted"
            expect(row.locator("td.total")).to_have_text("2", timeout=10_000)
            expect(row.locator("td.reject")).to_have_text("2")
            assert page.evaluate("window.__sameDocument === true"), "the page reloaded"

            status, api = http_json("GET", f"{gateway.url}/api/v1/tallies/{subs[0]}")
            assert status == 200
            expect(row.locator("td.decision")).to_have_text(api["decision"])
            expect(row.locator("td.version")).to_have_text(str(api["version"]))
            genre_row = page.locator(f'#decisions tr[data-genre="{genre}"]')
            expect(genre_row.locator("td").last).to_have_text("3")
            expect(page.locator(f'#escalations li[data-submission="{subs[2]}"]')).to_have_count(
                1, timeout=10_000
            )
            page.wait_for_timeout(300)  # let the flash animation settle for the picture
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert not errors, errors
        finally:
            context.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
