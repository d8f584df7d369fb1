"""A headless Chromium driven as a person would use a page: type into a field, click a button, wait,
read the page, take a screenshot. It speaks the Chrome DevTools Protocol over --remote-debugging-pipe
(JSON messages ending in a NUL byte, read by the browser on its fd 3 and written on its fd 4), so it
needs nothing beyond the standard library."""

import base64
import json
import os
import select
import signal
import subprocess
import time


class Browser:
    """One page of a headless Chromium at url, in its own profile folder."""

    def __init__(self, chromium, url, profile, window=(900, 700), timeout=60):
        to_browser, self.commands = os.pipe()
        self.replies, from_browser = os.pipe()

        def pipes():   # in the child, before exec: the two ends where Chromium looks for them
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
             "about:blank"], preexec_fn=pipes, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_browser)
        os.close(from_browser)
        self.timeout, self.next_id, self.buffer, self.session = timeout, 0, b"", None
        try:
            target = self.call("Target.createTarget", url=url)["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride", width=window[0], height=window[1], deviceScaleFactor=1,
                      mobile=False)   # the page's viewport: the window's size, whatever the browser's frame takes
        except BaseException:   # no browser left behind
            self.close()
            raise

    def call(self, method, session=None, **params):
        """The result of one protocol command (in the page's session once attached)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session or self.session:
            message["sessionId"] = session or self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:   # events and other replies come first: skip them
            while b"\0" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} within {self.timeout} s")
                chunk = os.read(self.replies, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium ended while answering {method}")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expression):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=30):
        """Wait until the expression is true in the page (one that throws is not, yet: the page may be
        loading); its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never had {expression}")
            time.sleep(0.05)

    def type_into(self, element_id, text):
        """Focus the field, select what it holds, and type text over it (as keyboard input)."""
        self.js(f"(e => {{ e.focus(); e.select(); }})(document.getElementById({json.dumps(element_id)}))")
        self.call("Input.insertText", text=text)

    def click(self, element_id):
        """A left click at the middle of the element."""
        x, y = self.js(f"(r => [r.x + r.width / 2, r.y + r.height / 2])"
                       f"(document.getElementById({json.dumps(element_id)}).getBoundingClientRect())")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        os.close(self.commands)
        os.close(self.replies)
