"""A server of test_serve.py and test_browser.py: `python -m minrnn serve` in a subprocess, and
what `sample` prints for a generation request."""

import http.client
import json
import re
import signal

from cliutil import start


class Served:
    """`python -m minrnn serve CKPT --port 0 ...` running; port: the one it took."""

    def __init__(self, checkpoint, *options, cwd):
        self.process = start("serve", checkpoint, "--port", "0", *options, cwd=cwd)
        line = self.process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + self.process.stderr.read()
        self.port = int(found.group(1))

    def post(self, path, body, raw=None):
        """(status, the JSON reply) of a POST of body (JSON), or of raw bytes as they are."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, json.loads(data)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()

    def streamed(self, body):
        """The pieces and the end event of a streamed generation (Server-Sent Events)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", "/generate", body=json.dumps({**body, "stream": True}).encode())
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
        pieces, end = [], None
        for block in r.read().decode("utf-8").split("\n\n"):
            if block.startswith("data: "):
                pieces.append(json.loads(block[6:]))
            elif block.startswith("event: end\n"):
                end = json.loads(block.split("data: ", 1)[1])
        c.close()
        return "".join(pieces), end

    def streams(self):
        return json.loads(self.get("/info")[1])["streams"]

    def stop(self):
        """Ctrl-C: the server says so and ends with status 0."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0 and err.strip().endswith("stopped"), err
        assert "Traceback" not in err, err


def alone(m, r):
    """What `sample` prints for request r (the API's printed), its prime cut off."""
    prime = r.get("prime", "").encode()
    pieces = m.printed(prime, 1, r.get("length", 200), r.get("temperature", 1.0), r.get("top_k", 0),
                       r.get("top_p", 1.0), r.get("seed"), None, r.get("stop", "").encode())
    return b"".join(pieces)[len(prime):].decode("utf-8", "replace")
