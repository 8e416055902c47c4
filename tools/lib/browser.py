"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol
through a pipe (--remote-debugging-pipe: commands in on fd 3, answers out
on fd 4, each message JSON ended by a NUL byte), so that no debugging port
is opened and a test can read the live page again and again without
reloading it.  Standard library only.

  with Browser() as b:
      page = b.open("http://127.0.0.1:9091/ui")
      page.eval("document.title")
      page.screenshot("build/artifacts/x.png")

Every call is bounded in time; the browser is stopped by its PID.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

from procs import stop_pid

# Keep the headless browser off every network but the page's loopback.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
         "--no-pings", "--disable-breakpad", "--mute-audio", "--hide-scrollbars",
         "--window-size=1280,1400"]


def chromium_path():
    """The chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, timeout=30):
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="agentscaler-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        # The shell puts the two pipe ends on fds 3 and 4, where Chromium
        # looks for them.
        script = 'exec "$@" 3<&%d 4>&%d' % (cmd_r, out_w)
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            ["sh", "-c", script, "sh", chromium_path()] + FLAGS +
            ["--user-data-dir=" + os.path.join(self.dir, "profile"), "about:blank"],
            pass_fds=(cmd_r, out_w), stdout=self.log, stderr=self.log)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._next = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        stop_pid(self.proc)
        os.close(self._cmd_w)
        os.close(self._out_r)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no answer from chromium in time")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._out_r, 1 << 16)
            if not chunk:
                raise BrowserError("chromium closed its pipe:\n" + self.logs()[-3000:])
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=None):
        """Sends one command and returns its result (events are skipped)."""
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            ans = self._read_message(deadline)
            if ans.get("id") != self._next:
                continue
            if "error" in ans:
                raise BrowserError("%s: %s" % (method, ans["error"]))
            return ans.get("result", {})

    def open(self, url):
        """A new tab on url, waited for until its load event."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Page.navigate", {"url": url})
        page.wait("document.readyState === 'complete' && location.href === %s" %
                  json.dumps(url), "the page to load")
        return page


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session

    def call(self, method, params=None):
        return self.browser.call(method, params, session=self.session)

    def eval(self, expression):
        """The value of a JavaScript expression in the page (JSON values)."""
        res = self.call("Runtime.evaluate", {"expression": expression,
                                             "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError("%s: %s" % (expression, res["exceptionDetails"]))
        return res["result"].get("value")

    def wait(self, expression, what, timeout=30):
        """Polls expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise BrowserError("timed out waiting for " + what)
            time.sleep(0.1)

    def screenshot(self, path):
        """Writes a PNG of the whole page to path."""
        data = self.call("Page.captureScreenshot", {"format": "png",
                                                    "captureBeyondViewport": True})["data"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
