"""python -m minrnn serve, as a client sees it: a real server process on 127.0.0.1, real sockets.
Each request draws what `sample` draws with the same seed, alone and among 16 concurrent clients
(continuous batching must not change a bit); bad requests are a 4xx with a one-line message and
the server goes on, and so does a request that waits past --timeout for a busy model (that server
runs in the test's process, which holds the model); a client that goes away frees its stream;
Ctrl-C stops the server cleanly."""

import http.client
import json
import signal
import socket
import threading
import time

import numpy as np
import pytest

import minrnn
from cliutil import example_files, minrnn as cli, start
from serveutil import Served, alone

TINY = dict(hidden=24, layers=2, batch_size=4, seq_len=16, sample_every=0, eval_every=20)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    return example_files(folder, 20000)


@pytest.fixture(scope="module")
def lm(folder):
    return minrnn.train(folder / "text.txt", out=folder / "lm", max_iters=60, quiet=True, **TINY)


# Requests of every kind of draw: the prime, greedy and hot, top-k, top-p, a stop string, no seed
REQUESTS = [dict(prime="The ", length=60, temperature=0.8, seed=1), dict(length=40, seed=2),
            dict(prime="def ", length=70, temperature=0.0), dict(prime="a", length=1, seed=5),
            dict(prime="In ", length=50, top_k=3, seed=6), dict(prime="x", length=55, top_p=0.7, seed=7),
            dict(prime="The", length=200, stop="e ", seed=8, temperature=1.2), dict(prime="", length=0, seed=9)]


def test_each_request_draws_what_sample_draws_alone_and_among_16_clients(folder, lm):
    m = minrnn.load(lm)
    server = Served(lm, "--max-length", "100000000", cwd=folder)
    try:
        # byte for byte the sample command's output, after its prime
        sample = cli("sample", "--checkpoint", lm, "--prime", "The ", "--length", "60", "--temperature", "0.8",
                     "--seed", "1", cwd=folder)
        status, reply = server.post("/generate", REQUESTS[0])
        assert status == 200 and reply == {"text": sample.stdout[len("The "):], "seed": 1}
        for r in REQUESTS:
            assert server.post("/generate", r)[1]["text"] == alone(m, r), r
            assert server.streamed(r)[0] == alone(m, r), r
        # no seed: one is drawn, and the reply says which, so that it draws the same again
        status, reply = server.post("/generate", {"prime": "The ", "length": 30})
        assert reply["text"] == alone(m, {"prime": "The ", "length": 30, "seed": reply["seed"]})
        # 16 clients at once, each joining the batch when it arrives: each draws what it draws alone.
        # A long stream runs meanwhile (its client closes once they are done), so that they are
        # batched with it and with each other whatever the scheduler does: /info counts the most
        # streams a step held
        anchor = socket.create_connection(("127.0.0.1", server.port))
        body = json.dumps({"length": 100000000, "seed": 1, "stream": True}).encode()   # hours of it
        anchor.sendall(b"POST /generate HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert anchor.recv(12).startswith(b"HTTP/1.0 200")
        many = [dict(r, seed=100 + i, length=r.get("length", 200) + 3 * i) for i, r in enumerate(REQUESTS * 2)]
        replies, go = [None] * len(many), threading.Barrier(len(many))

        def client(i):
            go.wait()
            replies[i] = server.streamed(many[i])[0] if i % 2 else server.post("/generate", many[i])[1]["text"]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(many))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert replies == [alone(m, r) for r in many]
        assert json.loads(server.get("/info")[1])["largest_batch"] >= 2
        anchor.close()
        deadline = time.monotonic() + 10
        while server.streams() != 0:   # the anchor's stream leaves at a step after its client closed
            assert time.monotonic() < deadline
    finally:
        server.stop()


def test_a_conditioned_record_model_draws_what_generate_draws(folder):
    best = minrnn.train(folder / "labelled.txt", out=folder / "gen", labels=True, max_iters=60, quiet=True, **TINY)
    m = minrnn.load(best)
    server = Served(best, cwd=folder)
    try:
        for seed, label in ((1, "up"), (2, "low"), (3, "up")):
            want = m.generate(condition=label, seed=seed, length=40)
            assert server.post("/generate", {"condition": label, "seed": seed, "length": 40}) == \
                (200, {"text": want, "seed": seed})
        status, reply = server.post("/generate", {"condition": "sideways"})
        assert status == 400 and "not one of this model's labels" in reply["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not JSON"),
    (b'{"length": NaN}', 400, "NaN"),
    (b'{"temperature": Infinity}', 400, "Infinity"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"lenght": 3}', 400, "unknown field 'lenght'"),
    (b'{"length": "20"}', 400, "field 'length': expected an integer"),
    (b'{"length": 2.5}', 400, "field 'length': expected an integer"),
    (b'{"temperature": true}', 400, "field 'temperature': expected a number"),
    (b'{"prime": 7}', 400, "field 'prime': expected a string"),
    (b'{"stream": "yes"}', 400, "field 'stream': expected true or false"),
    (b'{"length": 5001}', 400, "--max-length 5000"),
    (b'{"length": -1}', 400, "field 'length'"),
    (b'{"top_p": 0}', 400, "field 'top_p'"),
    (b'{"temperature": -1}', 400, "field 'temperature'"),
    (b'{"seed": -3}', 400, "field 'seed'"),
    (b'{"condition": "up"}', 400, "no condition"),
    (b'{"prime": "\\u00e9\\u00e9\\u00e9"}', 200, None),   # characters outside the vocabulary: skipped, as sample does
    (b"\xff\xfe", 400, "not JSON"),
    (b"[" * 5000 + b"]" * 5000, 400, "nested too deep"),
    (b'{"prime": "\\ud800"}', 400, "field 'prime': not Unicode"),
    (b'{"stop": "a\\udfffb"}', 400, "field 'stop': not Unicode"),
    (b'{"prime": "' + b"a" * 5001 + b'"}', 400, "field 'prime': 5001 characters"),
    (b'{"seed": ' + b"9" * 400 + b"}", 400, "field 'seed'"),
    (b'{"condition": [' + b"9" * 400 + b"]}", 400, "field 'condition'"),
])
def test_a_bad_request_is_a_4xx_with_one_line_and_the_server_goes_on(folder, lm, body, status, words):
    server = Served(lm, "--max-length", "5000", cwd=folder)
    try:
        got, reply = server.post("/generate", None, raw=body)
        assert got == status, reply
        if words:
            assert words in reply["error"] and "\n" not in reply["error"], reply
        assert server.post("/generate", {"length": 5, "seed": 1})[0] == 200   # still serving
    finally:
        server.stop()


def test_the_limits_each_answer_with_their_4xx(folder, lm):
    server = Served(lm, "--max-requests", "1", "--max-body", "200", "--timeout", "1", "--max-length", "1000000",
                    cwd=folder)
    try:
        status, reply = server.post("/generate", None, raw=b'{"prime": "' + b"a" * 300 + b'"}')
        assert status == 413 and "--max-body 200" in reply["error"]
        assert server.post("/nowhere", {})[0] == 404
        # one request in progress (a long one): another is refused until it ends
        busy = socket.create_connection(("127.0.0.1", server.port))
        body = b'{"length": 1000000, "seed": 1, "stream": true}'
        busy.sendall(b"POST /generate HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert busy.recv(12).startswith(b"HTTP/1.0 200")
        status, reply = server.post("/generate", {"length": 5})
        assert status == 429 and "--max-requests" in reply["error"]
        busy.close()
        deadline = time.monotonic() + 10
        while server.post("/generate", {"length": 5, "seed": 1})[0] != 200:   # its stream leaves at the next step
            assert time.monotonic() < deadline
        # a request that takes longer than --timeout
        status, reply = server.post("/generate", {"length": 1000000, "seed": 1})
        assert status == 408 and "--timeout" in reply["error"]
        deadline = time.monotonic() + 10
        while server.streams() != 0:   # it leaves at the next step
            assert time.monotonic() < deadline
        # requests' heads that never end (8 at once: the arrival's deadline, not a read's own
        # timeout, must end each, with a 408; 7 in 12 got no answer when the two raced), or that
        # come a byte a quarter second for most of --timeout 1 (each read in time): a 408 at the
        # request's deadline, 1 s, well before a read's own (6 s), and the others go on
        for trickle in (False, True):
            halves = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(1 if trickle else 8)]
            started = time.monotonic()
            for half in halves:
                half.sendall(b"POST /generate HTTP/1.0\r\nContent-Le")
            while trickle and time.monotonic() - started < 0.75:   # stops before the deadline: no broken pipe
                halves[0].sendall(b"n")
                time.sleep(0.25)
            for half in halves:
                half.settimeout(10)
                answer = b"".join(iter(lambda: half.recv(4096), b""))
                assert answer.startswith(b"HTTP/1.0 408") and b"did not arrive" in answer, answer
                half.close()
            assert time.monotonic() - started < 4
        # a body that never arrives
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(b"POST /generate HTTP/1.0\r\nContent-Length: 50\r\n\r\n{")
        slow.settimeout(10)
        answer = b"".join(iter(lambda: slow.recv(4096), b""))
        assert answer.startswith(b"HTTP/1.0 408") and b"did not arrive" in answer
        slow.close()
    finally:
        server.stop()


def test_a_client_that_goes_away_frees_its_stream(folder, lm):
    server = Served(lm, "--max-length", "10000000", cwd=folder)
    try:
        for stream in (True, False):
            c = socket.create_connection(("127.0.0.1", server.port))
            body = json.dumps({"length": 10000000, "seed": 1, "stream": stream}).encode()
            c.sendall(b"POST /generate HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            deadline = time.monotonic() + 10
            while server.streams() != 1:
                assert time.monotonic() < deadline
            if stream:
                assert c.recv(100)
            else:   # bytes after the request (none should come) do not hide the end of the client's stream
                c.sendall(b"\r\n")
            c.close()
            while server.streams() != 0:   # gone at a later step: not the 10 million characters asked for
                assert time.monotonic() < deadline, stream
    finally:
        server.stop()


def test_the_other_tasks_answer_at_their_endpoints_as_the_api_does(folder):
    cls = minrnn.train(folder / "labelled.txt", out=folder / "cls", task="classify", max_iters=40, quiet=True,
                       **{**TINY, "batch_size": 8})
    s2s = minrnn.train(folder / "pairs.tsv", out=folder / "s2s", task="seq2seq", max_iters=20, quiet=True,
                       **{**TINY, "batch_size": 8})
    server = Served(cls, cwd=folder)
    try:
        m = minrnn.load(cls)
        status, reply = server.post("/classify", {"text": "ABC3", "top": 2})
        assert status == 200 and reply["labels"] == [[label, p] for label, p in m.classify(["ABC3"], top=2)[0]]
        assert server.post("/classify", {})[1]["error"] == "field 'text' is required"
        assert server.post("/generate", {})[0] == 404
    finally:
        server.stop()
    server = Served(s2s, cwd=folder)
    try:
        m = minrnn.load(s2s)
        status, reply = server.post("/translate", {"text": "abc", "alignments": True})
        t = m.translations(["abc"], alignments=True).__next__()
        assert status == 200 and reply["text"] == t.text and reply["written"] == t.written
        assert np.array_equal(np.array(reply["alignments"]), np.asarray(t.alignments).astype(np.float64))
        assert reply["svg"].startswith("<svg")
        status, reply = server.post("/translate", {"text": "abc", "beam": 2, "temperature": 0.5})
        assert status == 400 and "beam=1" in reply["error"]
    finally:
        server.stop()


def in_process(lm, max_requests=8, timeout=1.0):
    """A server of lm in this process (so that a test can hold its model or slow its replies)."""
    from minrnn import serve
    server = serve.Server(("127.0.0.1", 0), minrnn.load(lm), serve.Limits(400, max_requests, 65536, timeout))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def post_to(server, body):
    """(status, JSON reply) of POST /generate body, as http.client reads it: up to its Content-Length
    (not to the connection's end)."""
    c = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    c.request("POST", "/generate", body=json.dumps(body).encode())
    r = c.getresponse()
    reply = json.loads(r.read())
    c.close()
    return r.status, reply


def test_a_request_that_waits_for_the_busy_model_past_the_timeout_is_a_408(lm):
    # One request at a time has the model; one that waits for it longer than --timeout is answered
    # 408 and the server goes on. The test holds the model as a long request before it would (a
    # request made long enough would make the test depend on the machine's speed)
    server = in_process(lm, timeout=1.0)
    try:
        with server.lock:
            started = time.monotonic()
            status, reply = post_to(server, {"length": 5, "seed": 1})
            waited = time.monotonic() - started
        assert status == 408 and "--timeout" in reply["error"]
        assert 1.0 <= waited < 6.0   # its --timeout of 1 s, not until the model is free (the test holds it)
        status, reply = post_to(server, {"length": 5, "seed": 1})
        assert status == 200 and len(reply["text"]) == 5
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_that_has_its_answer_is_no_longer_in_progress(lm, monkeypatch):
    # --max-requests 1: a client that has read its whole reply may send the next request at once.
    # The handler's thread may be set aside right after it writes a reply (here it sleeps, as a
    # loaded machine's scheduler would make it); the request must have left the count before
    from minrnn import serve
    written = serve.Handler.reply_json

    def then_set_aside(self, status, value):
        written(self, status, value)
        time.sleep(0.3)
    monkeypatch.setattr(serve.Handler, "reply_json", then_set_aside)
    server = in_process(lm, max_requests=1)
    try:
        for seed in range(3):
            status, reply = post_to(server, {"length": 5, "seed": seed})
            assert status == 200, reply
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_listens_on_this_machine_unless_told(folder, lm):
    r = cli("serve", folder / "missing.ckpt", cwd=folder)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "missing.ckpt" in r.stderr
    server = Served(lm, cwd=folder)
    try:   # its port taken: one line that says what to do
        r = cli("serve", lm, "--port", server.port, cwd=folder)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "give another --port" in r.stderr
    finally:
        server.stop()
    p = start("serve", lm, "--host", "0.0.0.0", "--port", "0", cwd=folder)
    try:
        first = p.stderr.readline()
        assert first.startswith("warning: listening on 0.0.0.0") and "--host 127.0.0.1" in first
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)


def test_a_captioner_and_a_model_of_vectors_answer_as_the_api_does(folder):
    # /caption takes one grid as numbers ((L, D), or (Hg, Wg, D) with a picture), /predict one
    # sequence of vectors ((T, D)); each the API's answer, and a wrong array a 400 naming the field
    rng = np.random.default_rng(3)
    grids = rng.standard_normal((60, 1, 4, 6))
    (folder / "captions.txt").write_text("".join(("one two\n", "two\n", "three one\n")[i % 3] for i in range(60)))
    np.save(folder / "grids.npy", grids)
    x, y = rng.standard_normal((60, 5, 3)), rng.integers(0, 2, 60)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    tiny = dict(hidden=12, layers=1, batch_size=8, sample_every=0, eval_every=10, max_iters=10, quiet=True)
    cap = minrnn.train(folder / "captions.txt", out=folder / "cap", grid=str(folder / "grids.npy"), **tiny)
    vec = minrnn.train(out=folder / "vec", inputs=str(folder / "x.npy"), targets=str(folder / "y.npy"),
                       task="classify", **tiny)
    server = Served(cap, cwd=folder)
    try:
        m = minrnn.load(cap)
        status, reply = server.post("/caption", {"grid": grids[5].tolist(), "alignments": True})
        t = next(m.captions(grids[5:6], alignments=True))
        assert status == 200 and reply["text"] == t.text and reply["written"] == t.written
        assert reply["svg"].startswith("<svg")   # the places' geometry: the grid's (1, 4)
        assert server.post("/caption", {"grid": grids[5, 0].tolist()})[1]["text"] == t.text   # (L, D)
        status, reply = server.post("/caption", {"grid": [[1, 2], [3]]})
        assert status == 400 and reply["error"].startswith("grid")
    finally:
        server.stop()
    server = Served(vec, cwd=folder)
    try:
        m = minrnn.load(vec)
        status, reply = server.post("/predict", {"inputs": x[7].tolist()})
        assert status == 200 and reply["labels"] == m.labels
        assert np.allclose(reply["outputs"], m.predict(x[7:8])[0], rtol=0, atol=0)   # the same numbers, as JSON
        status, reply = server.post("/predict", {"inputs": x[:2].tolist()})
        assert status == 400 and "one sequence" in reply["error"]
        status, reply = server.post("/predict", {"inputs": [[1.0, 2.0]]})
        assert status == 400 and "3" in reply["error"], reply
    finally:
        server.stop()


def test_requests_that_are_not_even_http_requests_of_ours(folder, lm):
    # a negative Content-Length, a method the server does not have, a client that leaves mid-head:
    # a one-line JSON 4xx (or nothing, for one who left), never a traceback on the server's side
    server = Served(lm, cwd=folder)
    try:
        for head, status, words in ((b"POST /generate HTTP/1.0\r\nContent-Length: -5\r\n\r\n", 400, b"Content-Length"),
                                    (b"POST /generate HTTP/1.0\r\n\r\n", 411, b"Content-Length"),
                                    (b"PUT /generate HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 405, b"PUT")):
            c = socket.create_connection(("127.0.0.1", server.port))
            c.sendall(head)
            c.settimeout(10)
            answer = b"".join(iter(lambda: c.recv(4096), b""))
            c.close()
            assert answer.startswith(b"HTTP/1.0 %d" % status) and words in answer, answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
        for _ in range(5):
            c = socket.create_connection(("127.0.0.1", server.port))
            c.sendall(b"POST /generate HTTP/1.0\r\nContent-Le")
            c.close()
        assert server.post("/generate", {"length": 3, "seed": 1})[0] == 200
    finally:
        server.stop()   # and no traceback on its stderr


def test_a_feature_conditioned_model_refuses_a_condition_float32_cannot_hold(folder):
    np.save(folder / "f.npy", np.random.default_rng(0).normal(3.0, 10.0, (60, 2)))
    best = minrnn.train(folder / "labelled.txt", out=folder / "feat", records=True, features=str(folder / "f.npy"),
                        max_iters=10, quiet=True, **TINY)
    server = Served(best, cwd=folder)
    try:
        status, reply = server.post("/generate", {"condition": [1e300, -1e300], "length": 20, "seed": 1})
        assert status == 400 and "float32" in reply["error"], reply
        status, reply = server.post("/generate", {"condition": [2.0, 4.0], "length": 20, "seed": 1})
        assert status == 200 and reply["text"] == minrnn.load(best).generate(condition=[2.0, 4.0], length=20, seed=1)
    finally:
        server.stop()


def test_clients_that_reset_their_connection_leave_no_traceback(folder, lm):
    # a GET, a POST to the wrong path and a good POST, each from a client that resets the connection
    # (SO_LINGER 0) as soon as it has sent: the server writes to a closed socket, quietly
    import struct
    server = Served(lm, cwd=folder)
    try:
        for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET /info HTTP/1.0\r\n\r\n",
                        b"POST /nowhere HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                        b'POST /generate HTTP/1.0\r\nContent-Length: 14\r\n\r\n{"length": 50}') * 5:
            c = socket.create_connection(("127.0.0.1", server.port))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sendall(request)
            c.close()
        assert server.post("/generate", {"length": 3, "seed": 1})[0] == 200
    finally:
        server.stop()   # no traceback on its stderr
