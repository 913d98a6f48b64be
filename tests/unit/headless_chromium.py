"""Debian's headless Chromium, driven over the Chrome DevTools protocol, for tests that look at
rendered pages: open a page at a fixed window size, evaluate JavaScript in it, take a screenshot.

One browser and one tab serve every page of a test; no driver beyond websocket-client (already
pinned) is needed. Chromium comes from the Debian package ``chromium`` (scripts/bootstrap.sh).
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import websocket

#: The flags that keep Chromium quiet on a machine without a display, a sandbox or a network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0")
START_TIMEOUT = 30
COMMAND_TIMEOUT = 60


class BrowserError(RuntimeError):
    """Chromium could not be started, or did not answer a command."""


def chromium_executable():
    """The Chromium to run: ``$CHROMIUM`` or the Debian package's.

    :return: the path of the executable
    :raises BrowserError: if there is none, saying how to install it
    """
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise BrowserError("Chromium is not installed: run scripts/bootstrap.sh (Debian package 'chromium') "
                           "or set CHROMIUM to a Chromium executable")
    return path


class HeadlessChromium:
    """One headless Chromium with one tab of a fixed size; use it as a context manager.

    :param int width: width of the window (CSS pixels)
    :param int height: height of the window (CSS pixels)
    """

    def __init__(self, width, height):
        self._next_id = 0
        self._directory = Path(tempfile.mkdtemp(prefix="headless-chromium-"))
        self._profile = self._directory / "profile"
        self._log = self._directory / "chromium.log"
        with open(self._log, "wb") as log:  # a file, not a pipe: Chromium logs a lot and must never block
            self._process = subprocess.Popen(
                [chromium_executable(), *FLAGS, f"--user-data-dir={self._profile}",
                 f"--window-size={width},{height}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._socket = websocket.create_connection(self._browser_address(), timeout=COMMAND_TIMEOUT,
                                                       suppress_origin=True)
            target = self._command("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.command("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                         mobile=False)
            self.command("Page.enable")
        except BaseException:
            self.close()
            raise

    def _browser_address(self):
        """The browser's DevTools websocket, read from the port file Chromium writes once listening."""
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"Chromium exited with {self._process.returncode}: "
                                   f"{self._log.read_text(errors='replace')[-2000:]}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise BrowserError(f"Chromium did not open its DevTools port within {START_TIMEOUT} s")

    def _command(self, method, session=None, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:  # events arrive in between; no test here needs them
            answer = json.loads(self._socket.recv())
            if answer.get("id") == self._next_id:
                break
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return answer["result"]

    def command(self, method, **params):
        """Send a DevTools command to the tab.

        :param str method: the command, e.g. ``Page.navigate``
        :param params: its parameters
        :return: its result (a dict)
        """
        return self._command(method, self._session, **params)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the open page (awaited if it is a promise).

        :param str expression: the JavaScript
        :return: its value, as JSON gives it
        """
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url):
        """Open a page and wait until it and its fonts are loaded.

        :param str url: the page
        """
        error = self.command("Page.navigate", url=url).get("errorText")
        if error:
            raise BrowserError(f"cannot open {url}: {error}")
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while self.evaluate("document.readyState") != "complete" or self.evaluate("location.href") != url:
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load within {COMMAND_TIMEOUT} s")
            time.sleep(0.02)
        self.evaluate("document.fonts.ready.then(() => true)")

    def screenshot(self, path):
        """Save what the window shows now as a PNG.

        :param path: the file to write
        """
        data = self.command("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        """Stop Chromium and remove its profile."""
        try:
            if getattr(self, "_socket", None):
                self._socket.close()
        finally:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
