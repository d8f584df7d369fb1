"""A load test of python -m minrnn serve: N clients at once, each streaming one generation of a fixed
length (Server-Sent Events), against a server in another process on this machine.

    PYTHONPATH=. python tools/serve_load.py --checkpoint build/run/best.ckpt --clients 1 8 32

For each number of clients: the characters all of them received per second of wall time (from the
first request sent to the last character read), the time from a client's request to its first
character (p50, p99 over the clients of 3 rounds), and the errors (any status but 200, a reply
that is not the length asked for). The bench's `serve` row runs this on make run's model shape.
"""

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(checkpoint, threads=0):
    """`python -m minrnn serve` on a free port: (process, port)."""
    p = subprocess.Popen([sys.executable, "-m", "minrnn", "serve", str(checkpoint), "--port", "0", "--threads",
                          str(threads), "--max-requests", "256"], stderr=subprocess.PIPE, text=True,
                         env={"PYTHONPATH": str(ROOT), **__import__("os").environ})
    line = p.stderr.readline()
    found = re.search(r":(\d+)/", line)
    if not found:
        p.kill()
        raise SystemExit(f"the server did not start: {line}{p.stderr.read()}")
    return p, int(found.group(1))


def one_client(port, length, seed, results, i):
    """Stream one generation; results[i] = (seconds to the first character, characters, error or None)."""
    started = time.perf_counter()
    first, chars, error = None, 0, None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/generate", body=json.dumps({"length": length, "seed": seed, "temperature": 1.0,
                                                         "stream": True}).encode())
        r = c.getresponse()
        if r.status != 200:
            error = f"status {r.status}"
        else:
            buffer = b""
            while chunk := r.read1(65536):
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    if block.startswith(b"data: "):
                        if first is None:
                            first = time.perf_counter() - started
                        chars += len(json.loads(block[6:]))
                    elif block.startswith(b"event: error"):
                        error = block.decode()
            if chars != length and error is None:
                error = f"{chars} characters, not {length}"
        c.close()
    except OSError as e:
        error = str(e)
    results[i] = (first, chars, error)


def load(port, clients, length, rounds=3):
    """{clients, chars_per_s, ttfc_p50, ttfc_p99 (seconds), errors} of `rounds` rounds of `clients`
    clients started together."""
    firsts, rates, errors = [], [], 0
    for r in range(rounds):
        results, threads = [None] * clients, []
        started = time.perf_counter()
        for i in range(clients):
            threads.append(threading.Thread(target=one_client, args=(port, length, 1000 * r + i, results, i)))
            threads[-1].start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        rates.append(sum(chars for _, chars, _ in results) / seconds)
        firsts += [first for first, _, _ in results if first is not None]
        errors += sum(error is not None for _, _, error in results)
    q = statistics.quantiles(firsts, n=100, method="inclusive") if len(firsts) > 1 else firsts * 99
    return {"clients": clients, "chars_per_s": statistics.median(rates), "ttfc_p50": statistics.median(firsts),
            "ttfc_p99": q[98], "errors": errors}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--length", type=int, default=500)
    args = p.parse_args()
    server, port = start_server(args.checkpoint)
    try:
        for n in args.clients:
            r = load(port, n, args.length)
            print(f"{n:3d} clients: {r['chars_per_s']:9,.0f} chars/s, first character p50 {1000 * r['ttfc_p50']:.1f} ms, "
                  f"p99 {1000 * r['ttfc_p99']:.1f} ms, errors {r['errors']}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
