"""python -m minrnn serve: a model behind HTTP, for many users at once, and a page to play with it.

The standard library's ThreadingHTTPServer: a thread per connection, and one more, the Batcher,
that owns the model's generation: every generation request becomes a core.Slot that joins one
batch of streams at the next step and leaves it when it ends (continuous batching, as LLM servers
do). A row of a step depends on its own inputs alone, bit for bit, so each request draws what
`python -m minrnn sample` draws with the same seed, whoever else is in the batch. A model that
does not generate (a classifier, a seq2seq model, a captioner, a model of vectors) answers its
requests one at a time through minrnn.load's API (one lock holds the model).

What each endpoint takes is its task's (tasks/base.py: endpoint, fields, slot, answer). Errors
are one-line JSON {"error": ...} with a 4xx status; the server goes on serving.
"""

import codecs
import json
import math
import secrets
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import NamedTuple

from minrnn import core
from minrnn.api import check_use
from minrnn.errors import UserError
from minrnn.settings import USE
from minrnn.tasks.base import REQUIRED

# What a request field of each kind must be in JSON, and how messages name it.
KINDS = {
    "text": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "condition": (lambda v: isinstance(v, str) or numbers(v, 1), "a label (a string) or a list of numbers"),
    "numbers": (lambda v: numbers(v, 4), "an array of numbers (at most 4 deep)"),
}


def numbers(v, depth):
    """Whether v is a list of numbers that float64 holds, or of such lists, at most `depth` deep."""
    if not isinstance(v, list) or depth == 0:
        return False
    for x in v:
        if isinstance(x, list):
            if not numbers(x, depth - 1):
                return False
        elif isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, int) and abs(x) >= 2**1023):
            return False
        elif isinstance(x, float) and not math.isfinite(x):   # 1e400 reads as inf
            return False
    return True


MAX_BEAM = 64   # beams a request may ask for: a search holds the model (and the requests after it)
LOOPBACK = ("127.0.0.1", "localhost", "::1")   # hosts that only this machine reaches
LENGTHS = ("length", "max_length")   # the fields --max-length holds
PIECE = 0.025   # seconds at least between two pieces of a stream: a thread woken for every character of
#                 every stream costs the batch more than its steps (the GIL); a person sees no difference


class Limits(NamedTuple):
    max_length: int      # characters a request may ask for
    max_requests: int    # requests in progress at once
    max_body: int        # bytes of a request's body
    timeout: float       # seconds a request may take


class Refused(Exception):
    """A request the server does not take: the HTTP status and the one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def checked(task, body, limits):
    """The request of a parsed JSON body: every field of the task's endpoint, its default where it
    is absent or null; Refused(400) naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object, {\"field\": value, ...}")
    unknown = sorted(set(body) - set(task.fields))
    if unknown:
        raise Refused(400, f"unknown field {unknown[0]!r}; POST /{task.endpoint} takes {', '.join(task.fields)}")
    request = {}
    for name, (kind, default) in task.fields.items():
        value = body.get(name)
        if value is None:
            if default is REQUIRED:
                raise Refused(400, f"field {name!r} is required")
            value = default
        elif not KINDS[kind][0](value):
            raise Refused(400, f"field {name!r}: expected {KINDS[kind][1]}, not {json.dumps(value)[:40]}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise Refused(400, f"field {name!r}: not Unicode text (a lone surrogate, \\ud800 to \\udfff)") from None
            if len(value) > limits.max_length:
                raise Refused(400, f"field {name!r}: {len(value)} characters, more than this server's --max-length "
                                   f"{limits.max_length}")
        request[name] = value
    for name in LENGTHS:
        if name in request and request[name] > limits.max_length:
            raise Refused(400, f"field {name!r}: {str(request[name])[:30]} is above this server's --max-length "
                               f"{limits.max_length}; ask for fewer")
    if request.get("beam", 1) > MAX_BEAM:
        raise Refused(400, f"field 'beam': at most {MAX_BEAM} on this server")
    for name, value in request.items():
        try:
            check_use(**{name: value} if name in USE else {})
        except UserError as e:
            raise Refused(400, f"field {name!r}: {str(e).split(': ', 1)[-1][:200]}") from None
    return request


def reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def error(message):
    """The JSON value of an error reply: its one line, at most 300 characters."""
    return {"error": message[:300]}


def internal(e):
    """The message of a bug, once on the server's stderr and then for the client."""
    print(f"minrnn serve: internal error: {type(e).__name__}: {e}", file=sys.stderr)
    return f"internal error: {type(e).__name__}: {e} (please report it)"


class Job:
    """A generation request in the batch: its slot (whose `drawn` grows as the batch steps), done
    once the slot has left the batch, and the error of a step that failed, if one did."""

    def __init__(self, slot):
        self.slot, self.done, self.error = slot, threading.Event(), None   # error: the batch's (a bug)
        self.fresh = threading.Event()   # set when the batch wrote to slot.drawn, or it ended


class Batcher(threading.Thread):
    """Steps every generation request's stream together, as long as there is one."""

    def __init__(self, model, lock):
        super().__init__(daemon=True, name="minrnn-batcher")
        self.slots, self.lock = core.Slots(model), lock
        self.joining, self.jobs, self.wake = [], {}, threading.Condition()
        self.largest = 0   # the most streams one step has held: /info tells it

    def submit(self, job):
        with self.wake:
            self.joining.append(job)
            self.wake.notify()

    def run(self):
        while True:
            with self.wake:
                while not self.joining and not self.slots.slots:
                    self.wake.wait()
                joining, self.joining = self.joining, []
            try:
                self.step(joining)
            except Exception as e:   # a bug: it ends the requests in the batch, not the server
                for job in list(self.jobs.values()) + joining:
                    job.error = job.error or e
                    job.done.set()
                    job.fresh.set()
                self.slots.leave(lambda s: True)
                self.jobs = {}

    def step(self, joining):
        """The joining requests join the batch, which steps once; each request that left it is done."""
        with self.lock:
            for job in joining:
                self.jobs[job.slot] = job
                self.slots.join(job.slot)
            stepped = self.slots.step()
        self.largest = max(self.largest, self.slots.stepped)
        inside = set(self.slots.slots)
        for slot, token in stepped:
            job = self.jobs[slot]
            if slot not in inside:   # it left the batch: all it drew is in slot.drawn
                del self.jobs[slot]
                job.done.set()
                job.fresh.set()
            elif token is not None and not job.fresh.is_set():
                job.fresh.set()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128   # connections waiting to be accepted: beyond them a client waits a second to retry

    def __init__(self, address, m, limits):
        super().__init__(address, Handler)
        self.m, self.task, self.limits = m, m.task, limits
        self.lock = threading.Lock()                   # the model: one call at a time
        self.gate = threading.BoundedSemaphore(limits.max_requests)
        self.batcher = Batcher(m.model, self.lock)
        self.batcher.start()
        self.page = resources.files("minrnn").joinpath("serve.html").read_bytes()

    def handle_error(self, request, client_address):
        """A handler's exception that escaped it: a client gone is nothing; anything else one line."""
        e = sys.exc_info()[1]
        if not isinstance(e, OSError):
            internal(e)

    def info(self):
        """What GET /info tells the page: the model, its endpoint and that endpoint's fields."""
        cfg = self.m.model.config
        return {"what": self.task.what, "endpoint": self.task.endpoint, "cell": cfg.cell,
                "condition": getattr(cfg, "cond", "none"),
                "hidden": cfg.hidden_size, "vocab": len(self.m.vocab), "labels": self.m.labels,
                "fields": {name: {"kind": kind, "default": None if default is REQUIRED else default,
                                  "required": default is REQUIRED}
                           for name, (kind, default) in self.task.fields.items()},
                "max_length": self.limits.max_length,
                "streams": len(self.batcher.slots.slots),   # generations in the batch now
                "largest_batch": self.batcher.largest}


class Handler(BaseHTTPRequestHandler):
    server_version = "minrnn"
    protocol_version = "HTTP/1.0"   # one request per connection: a streamed reply ends when it closes
    disable_nagle_algorithm = True  # each piece of a stream leaves at once, not after the last one's ACK

    def setup(self):
        """The request (head and body) must arrive within --timeout: past it the read side is shut
        (the handler answers 408), however slowly its bytes were coming. Each read and write may
        wait 5 s longer than that, so that the arrival's deadline comes first even on a loaded
        machine (a read's own timeout ends the connection without a word)."""
        self.timeout = self.server.limits.timeout + 5.0
        super().setup()
        self.late = False
        self.arrival = threading.Timer(self.server.limits.timeout, self.cut)
        self.arrival.daemon = True
        self.arrival.start()

    def cut(self):
        self.late = True
        try:
            self.connection.shutdown(socket.SHUT_RD)   # the read waiting returns: the handler ends
        except OSError:
            pass

    def arrived(self):
        self.arrival.cancel()

    def not_arrived(self):
        return Refused(408, f"the request did not arrive within {self.server.limits.timeout:g} s (--timeout)")

    def finish(self):
        self.arrived()
        try:
            super().finish()
        except OSError:   # the client went away first
            pass

    def log_message(self, format, *args):   # http.server logs every request on stderr: a server for one's
        pass                                # own machine stays quiet

    def not_allowed(self):
        self.refuse(405, f"{self.command} is not a method of this server: GET / or /info, POST "
                         f"/{self.server.task.endpoint}")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = not_allowed

    def do_GET(self):
        self.arrived()
        if self.late:
            self.refuse(408, str(self.not_arrived()))
        elif self.path in ("/", "/index.html"):
            self.reply(200, self.server.page, "text/html; charset=utf-8")
        elif self.path == "/info":
            self.reply_json(200, self.server.info())
        else:
            self.refuse(404, f"no page {self.path}; GET / or /info, POST /{self.server.task.endpoint}")

    def do_POST(self):
        server = self.server
        if self.path != f"/{server.task.endpoint}":
            return self.refuse(404, f"this model answers POST /{server.task.endpoint}, not {self.path}")
        if self.late:
            return self.refuse(408, str(self.not_arrived()))
        if not server.gate.acquire(blocking=False):
            return self.refuse(429, f"{server.limits.max_requests} requests are in progress, this server's "
                                    "--max-requests; try again in a moment")
        reply = None   # (status, JSON value) still to send; None when answered already (a stream)
        try:
            reply = self.answer(self.request_of())
        except Refused as e:
            reply = e.status, error(str(e))
        except (UserError, core.MinrnnError) as e:
            reply = 400, error(str(e))
        except OSError:   # the client went away, or stopped reading for --timeout seconds
            pass
        except Exception as e:   # a bug: one line for the client and one for whoever runs the server
            reply = 500, error(internal(e))
        finally:   # before the reply: a client that has it may send its next request at once
            server.gate.release()
        if reply is not None:
            self.send_json(*reply)

    def refuse(self, status, message):
        """The one-line JSON error, unless the client has gone."""
        self.send_json(status, error(message))

    def send_json(self, status, value):
        """A whole JSON reply, unless the client has gone."""
        try:
            self.reply_json(status, value)
        except OSError:
            pass

    def request_of(self):
        """The request's fields, checked, from its JSON body."""
        limits = self.server.limits
        if self.late:
            raise self.not_arrived()
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise Refused(411, "give the body's size in bytes in a Content-Length header") from None
        if size < 0:
            raise Refused(400, f"Content-Length {size}: give the body's size in bytes")
        if size > limits.max_body:
            raise Refused(413, f"the body has {size} bytes, more than this server's --max-body {limits.max_body}")
        try:
            raw = self.rfile.read(size)
            if len(raw) < size:
                raise self.not_arrived()
            self.arrived()
            body = json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise Refused(400, f"the body is not JSON: {e}") from None
        except RecursionError:
            raise Refused(400, "the body is not JSON this server reads: arrays or objects nested too deep") from None
        except socket.timeout:   # TimeoutError since Python 3.10
            raise self.not_arrived() from None
        return checked(self.server.task, body, limits)

    def answer(self, request):
        """The request answered: (status, JSON value) to reply, or None once a stream has been sent."""
        server = self.server
        if request.get("seed", 0) is None:   # drawn here below 2^53, which a browser's numbers hold exactly
            request["seed"] = secrets.randbits(53)
        # the task's checks and the API's calls read the model, one request at a time: one that waits
        # for it longer than --timeout is answered 408; one that has it runs to its end (its size is
        # capped by --max-length and the beams)
        if not server.lock.acquire(timeout=server.limits.timeout):
            raise Refused(408, f"the model was busy with other requests for {server.limits.timeout:g} s, this "
                               "server's --timeout; try again in a moment")
        try:
            slot = server.task.slot(server.m, request)
            reply = None if slot is not None else server.task.answer(server.m, request)
        finally:
            server.lock.release()
        if slot is None:
            return 200, reply
        job = Job(slot)
        server.batcher.submit(job)
        try:
            return self.stream(job) if request.get("stream") else self.whole(job)
        finally:
            slot.cancelled = True   # a client gone, or a time out: its stream leaves at the next step

    def pieces(self, job):
        """The ids the job writes, a list of those drawn since the last at a time (the first as soon
        as it is drawn, the next PIECE seconds later at the soonest), until it ends or the client
        goes away; Refused(408) past the time limit."""
        deadline, sent, first = time.monotonic() + self.server.limits.timeout, 0, True
        while True:
            if not first:
                job.done.wait(PIECE)   # what is drawn meanwhile joins the next piece; the end comes at once
            job.fresh.wait(max(0.0, min(PIECE, deadline - time.monotonic())))
            job.fresh.clear()
            done, first = job.done.is_set(), False
            drawn = job.slot.drawn[sent:]   # the batch only appends: what is there stays
            sent += len(drawn)
            if job.slot.error is not None:   # its own draw failed: the others went on
                raise Refused(400, f"drawing failed after {len(job.slot.drawn)} characters: {job.slot.error} (the "
                                   "model's outputs for this request are not finite numbers)")
            if job.error is not None:
                raise Refused(500, internal(job.error))
            if drawn:
                yield drawn
            if done or self.gone():
                return
            if time.monotonic() > deadline:
                raise Refused(408, f"the request took more than {self.server.limits.timeout:g} s, this server's "
                                   "--timeout; ask for fewer characters")

    def whole(self, job):
        """The reply of a whole generation: (200, its text and seed), or None if the client went away."""
        ids = [token for piece in self.pieces(job) for token in piece]
        if job.done.is_set():
            text = self.server.m.vocab.to_bytes(ids).decode("utf-8", "replace")
            return 200, {"text": text, "seed": job.slot.seed}
        return None

    def gone(self):
        """Whether the client closed its side: checked as pieces are drawn. Whatever it sent after
        the request (nothing should come: one request a connection) is read, a piece a call, and
        dropped on the way to the end of its stream."""
        if not select.select([self.connection], [], [], 0)[0]:
            return False
        try:
            return not self.connection.recv(4096)
        except OSError:
            return True

    def stream(self, job):
        """Server-Sent Events: the text as it is drawn, a piece every PIECE seconds at most (data: a
        JSON string), then an "end" event with the seed, or an "error" event."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        decoder, vocab = codecs.getincrementaldecoder("utf-8")("replace"), self.server.m.vocab
        try:
            for ids in self.pieces(job):
                piece = decoder.decode(vocab.to_bytes(ids))
                if piece:
                    self.event("message", json.dumps(piece))
            rest = decoder.decode(b"", final=True)
            if rest:
                self.event("message", json.dumps(rest))
            self.event("end", json.dumps({"seed": job.slot.seed}))
        except Refused as e:
            self.event("error", json.dumps({"error": str(e)}))
        except OSError:
            raise
        except Exception as e:   # a bug, after the status line: the stream's own error event
            self.event("error", json.dumps({"error": internal(e)}))

    def event(self, name, data):
        self.wfile.write((f"event: {name}\n" if name != "message" else "").encode() + f"data: {data}\n\n".encode())
        self.wfile.flush()

    def reply_json(self, status, value):
        self.reply(status, json.dumps(value).encode("utf-8"), "application/json")

    def reply(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(m, host, port, limits, ready=sys.stderr):
    """Serve minrnn.load's model m on host:port until Ctrl-C."""
    kind = type("Server6", (Server,), {"address_family": socket.AF_INET6}) if ":" in host else Server
    try:
        server = kind((host, port), m, limits)
    except OSError as e:
        why = e.strerror or str(e)
        if isinstance(e, socket.gaierror):
            raise UserError(f"--host {host}: {why}; give an address of this machine (127.0.0.1: itself)") from None
        raise UserError(f"cannot listen on {host} port {port}: {why}; give another --port (0: any free one)") from None
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {m.task.what} on http://{shown}:{server.server_address[1]}/ (POST /{m.task.endpoint}); "
          "Ctrl-C stops", file=ready, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
