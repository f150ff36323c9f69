#!/usr/bin/env python3
"""Measure one TCP stream's throughput over loopback (127.0.0.1), bounded in size and time.

Meant to run inside `launch/braid-slowlink` to check the shaped rate, e.g.

    launch/braid-slowlink --rate 100mbit -- python3 bench/slowlink_tcp_probe.py --bytes 50M

A receiver thread accepts one connection on an ephemeral port of 127.0.0.1; the sender
writes --bytes (or stops at --seconds, whichever comes first). The rate is measured at the
receiver over the bytes after the first --skip (so the tbf bucket's initial burst and TCP
slow start do not inflate it). Prints one line of JSON. Only loopback is ever used.
"""
import argparse
import json
import socket
import sys
import threading
import time


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    suffix = text[-1] if text and text[-1] in "KMG" else ""
    return int(float(text[: len(text) - len(suffix)]) * units[suffix])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", default="50M", help="bytes to send (default 50M, max 1G)")
    ap.add_argument("--seconds", type=float, default=20.0, help="stop sending after this long")
    ap.add_argument("--skip", default="2M", help="bytes not counted in the rate (default 2M)")
    ap.add_argument("--chunk", default="64K", help="size of each send() (default 64K)")
    args = ap.parse_args()
    total = min(parse_size(args.bytes), 1 << 30)
    skip = min(parse_size(args.skip), total // 2)
    chunk = parse_size(args.chunk)
    deadline = time.monotonic() + args.seconds

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5.0)
    result = {}

    def receive():
        conn, _ = server.accept()
        conn.settimeout(max(1.0, args.seconds + 5.0))
        got, t_skip, t0 = 0, None, time.monotonic()
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            got += len(data)
            if t_skip is None and got >= skip:
                t_skip, got_at_skip = time.monotonic(), got
        t_end = time.monotonic()
        conn.close()
        result["bytes"] = got
        result["seconds"] = round(t_end - t0, 3)
        if t_skip is not None and t_end > t_skip and got > got_at_skip:
            rate = (got - got_at_skip) / (t_end - t_skip)
            result["MBps"] = round(rate / 1e6, 3)
            result["Mbitps"] = round(rate * 8 / 1e6, 2)

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    tx = socket.create_connection(server.getsockname(), timeout=5.0)
    tx.settimeout(max(1.0, args.seconds + 5.0))
    payload = b"\0" * chunk
    sent = 0
    while sent < total and time.monotonic() < deadline:
        n = min(chunk, total - sent)
        tx.sendall(payload[:n])
        sent += n
    tx.shutdown(socket.SHUT_WR)
    rx.join(args.seconds + 10.0)
    tx.close()
    server.close()
    if "bytes" not in result:
        print(json.dumps({"error": "receiver did not finish"}))
        return 1
    result["sent"] = sent
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
