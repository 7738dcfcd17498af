"""requests_bench.py: the sequential-save benchmark through Python requests.

The way the API reference's own examples call the API: one requests.Session
(keep-alive), `json=` with the same payloads the module sends (alternating
two), the module's headers, and `.json()` on the answer.
Prints "<wall us/request> <cpu us/request>" for the timed part.

usage: python3 requests_bench.py URL N BODY_FILE_A BODY_FILE_B HEADER_FILE
"""
import json
import sys
import time

import requests


def main():
    url, n = sys.argv[1], int(sys.argv[2])
    payloads = []
    for path in sys.argv[3:5]:
        with open(path, encoding="utf-8") as f:
            payloads.append(json.load(f))
    headers = {}
    with open(sys.argv[5], encoding="utf-8") as f:
        for line in f:
            name, _, value = line.rstrip("\n").partition(": ")
            if name.lower() != "content-type":  # json= sets it
                headers[name] = value

    session = requests.Session()
    session.headers.update(headers)

    def put(i):
        r = session.put(url, json=payloads[i & 1])
        r.raise_for_status()
        r.json()

    for i in range(n // 20 + 1):
        put(i)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        put(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print("%.3f %.3f" % (wall * 1e6 / n, cpu * 1e6 / n))


main()
