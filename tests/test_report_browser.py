"""The report in a real browser: headless Chromium (Debian's ``chromium``) opens it, every
figure must load, no console error may occur, nothing may be fetched from the network,
and a screenshot is taken.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no driver package is
needed. ``.ci/run`` installs Chromium when missing and sets ``IMPACTMODEL_REQUIRE_BROWSER``,
which turns a missing browser into a failure instead of a skip.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("IMPACTMODEL_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found; .ci/run installs Debian's `chromium`")
    pytest.skip("no Chromium on this machine (.ci/run installs it)")


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_read, self._write = os.pipe()
        self._read, from_browser_write = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads commands, fd 4 writes replies
            # via fresh copies: the pipe ends may themselves be fds 3-6, and dup2 onto
            # the same number would keep them close-on-exec
            read, write = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run",
             "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its debugging pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._write)
        os.close(self._read)


def open_in_browser(page: Path, profile: Path) -> dict[str, Any]:
    """Load ``page`` in headless Chromium; return what it loaded, logged and looked like."""
    tools = DevTools(_browser(), profile)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True}
                             )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session=session)
        tools.send("Emulation.setDeviceMetricsOverride",
                   {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                   session=session)
        tools.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired")
        images = tools.send("Runtime.evaluate", {
            "expression": "JSON.stringify(Array.from(document.images).map(i => "
                          "({ok: i.complete && i.naturalWidth > 0, alt: i.alt}))) ",
            "returnByValue": True}, session=session)["result"]["value"]
        title = tools.send("Runtime.evaluate", {"expression": "document.title",
                                                "returnByValue": True},
                           session=session)["result"]["value"]
        shot = tools.send("Page.captureScreenshot",
                          {"format": "png", "captureBeyondViewport": True}, session=session)
        events = list(tools.events)
    finally:
        tools.close()
    errors = [e for e in events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    return {"images": json.loads(images), "title": title, "errors": errors,
            "requests": requests, "screenshot": base64.b64decode(shot["data"])}


def test_report_opens_in_chromium_with_every_figure_and_no_error(fitted_run, tmp_path):
    page = fitted_run / "report" / "report.html"
    seen = open_in_browser(page, tmp_path / "profile")
    figures = sorted((fitted_run / "report" / "figures").glob("*.png"))
    assert len(seen["images"]) == len(figures) >= 9
    broken = [image["alt"] for image in seen["images"] if not image["ok"]]
    assert not broken, f"figures that did not load: {broken}"
    assert not seen["errors"], f"console errors: {seen['errors']}"
    offline = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
    assert not offline, f"the report fetched {offline}"
    assert seen["title"].startswith("small")
    shot = seen["screenshot"]
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000
    (tmp_path / "report.png").write_bytes(shot)


def test_design_based_report_opens_in_chromium(tmp_path):
    from conftest import MODELS
    from typer.testing import CliRunner

    from impactmodel.cli import app

    result = CliRunner().invoke(app, ["fit", str(MODELS / "design-based.toml"), "--out",
                                      str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "results" / "design-based").iterdir()
    seen = open_in_browser(run / "report" / "report.html", tmp_path / "profile")
    assert seen["images"] and all(image["ok"] for image in seen["images"])
    assert not seen["errors"] and all(u.startswith(("file:", "data:"))
                                      for u in seen["requests"])
