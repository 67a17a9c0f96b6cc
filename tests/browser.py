"""Load a local HTML file in headless Chromium and report what a user would see.

Uses the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (file
descriptors 3/4, NUL-separated JSON; no websocket library, no network port):
console errors, uncaught exceptions, browser log errors (e.g. a failed image
load), requests that would leave the machine, and for every ``<img>`` whether
it decoded (``complete && naturalWidth > 0``).

Usage in tests::

    from tests.browser import check_page, require_chromium
    res = check_page(path)            # skips the test when no chromium exists
    assert res.ok, res.explain()
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PageCheck", "check_page", "find_chromium", "require_chromium"]

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--remote-debugging-pipe", "--mute-audio")

_IMG_SCRIPT = """(() => {
  const imgs = Array.from(document.images);
  return JSON.stringify({
    title: document.title,
    total: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => (i.alt || i.src.slice(0, 80))),
    alts: imgs.map(i => i.alt || ""),
    height: (document.documentElement ? document.documentElement.scrollHeight : 0),
    text_length: (document.body ? document.body.innerText.length : 0)
  });
})()"""


@dataclass
class PageCheck:
    """Outcome of loading one page."""

    loaded: bool = False
    title: str = ""
    images_total: int = 0
    images_broken: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    external_requests: list = field(default_factory=list)
    text_length: int = 0
    image_alts: list = field(default_factory=list)
    screenshot: str | None = None

    @property
    def all_images_rendered(self) -> bool:
        return not self.images_broken

    @property
    def ok(self) -> bool:
        return (self.loaded and not self.console_errors and self.all_images_rendered
                and not self.external_requests)

    def explain(self) -> str:
        return (f"loaded={self.loaded} images={self.images_total} broken={self.images_broken} "
                f"console_errors={self.console_errors} external={self.external_requests}")


def find_chromium() -> str | None:
    for c in (os.environ.get("CHROMIUM"), *CANDIDATES, shutil.which("chromium")):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def require_chromium() -> str:
    """Path of the browser; skips the calling test (with the reason) when none exists."""
    exe = find_chromium()
    if exe is None:
        import pytest
        pytest.skip("no Chromium browser installed (looked for " + ", ".join(CANDIDATES)
                    + "; Debian package 'chromium')")
    return exe


class _Pipe:
    """Minimal CDP client over the two pipes."""

    def __init__(self, wfd: int, rfd: int):
        self.wfd, self.rfd = wfd, rfd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.wfd, data)
            data = data[n:]
        return self.next_id

    def _read_one(self, deadline: float) -> dict | None:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                return None
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise EOFError("browser closed the debugging pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        mid = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg is None:
                raise TimeoutError(f"no reply to {method}")
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> dict | None:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg is None:
                return None
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._read_one(deadline) is not None:
            pass


def _collect(events: list[dict], res: PageCheck) -> None:
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            res.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                               for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            res.console_errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            res.console_errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if not url.startswith(("file:", "data:", "about:", "blob:")):
                res.external_requests.append(url)


def check_page(path: str | os.PathLike, timeout: float = 60.0, chromium: str | None = None,
               screenshot: str | os.PathLike | None = None, width: int = 1400) -> PageCheck:
    """Load ``path`` in headless Chromium; collect console errors and image status.

    With ``screenshot`` a PNG of the whole page (``width`` CSS pixels wide)
    is written there, as the test's artefact.  Skips the calling pytest
    test when no browser exists (``require_chromium``).
    """
    exe = chromium or require_chromium()
    url = Path(path).resolve().as_uri()
    res = PageCheck()
    with tempfile.TemporaryDirectory(prefix="almaqa-chromium-") as profile:
        to_child_r, to_child_w = os.pipe()      # we write commands -> fd 3
        from_child_r, from_child_w = os.pipe()  # browser writes -> fd 4

        def _setup() -> None:  # runs in the child: fds 3/4 are the CDP pipe ends
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=_setup, cwd=profile)
        os.close(to_child_r)
        os.close(from_child_w)
        cdp = _Pipe(to_child_w, from_child_r)
        try:
            target = cdp.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            sess = cdp.call("Target.attachToTarget",
                            {"targetId": target["targetId"], "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.call(f"{domain}.enable", session=sess)
            cdp.events.clear()
            cdp.call("Page.navigate", {"url": url}, session=sess, timeout=timeout)
            res.loaded = cdp.wait_event("Page.loadEventFired", timeout) is not None
            cdp.drain(0.5)
            out = cdp.call("Runtime.evaluate", {"expression": _IMG_SCRIPT, "returnByValue": True},
                           session=sess)
            info = json.loads(out["result"]["value"])
            res.title = info["title"]
            res.images_total = info["total"]
            res.images_broken = info["broken"]
            res.text_length = info["text_length"]
            res.image_alts = info["alts"]
            if screenshot is not None:
                height = 600  # measure the page at this width, then grow the view to it
                for _ in range(2):
                    cdp.call("Emulation.setDeviceMetricsOverride",
                             {"width": width, "height": height, "deviceScaleFactor": 1,
                              "mobile": False}, session=sess)
                    out = cdp.call("Runtime.evaluate", {
                        "expression": "document.documentElement.scrollHeight",
                        "returnByValue": True}, session=sess)
                    height = max(height, min(int(out["result"]["value"]), 30000))
                shot = cdp.call("Page.captureScreenshot", {"format": "png",
                                                           "captureBeyondViewport": True},
                                session=sess, timeout=timeout)
                import base64
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
                res.screenshot = str(screenshot)
            cdp.drain(0.2)
            _collect(cdp.events, res)
            try:
                cdp.send("Browser.close")
            except OSError:
                pass
        finally:
            for fd in (to_child_w, from_child_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return res
