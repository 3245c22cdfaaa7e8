"""Start-up time of `larder serve` and `larder serve-registry` on a registry of VIEWS feature
views: from spawning the process to its first correct answer (an online lookup over HTTP; a
gRPC ListFeatureViews listing every view), RUNS times each, with the median.

Usage: startup.py LARDER REPO VIEWS RUNS

The repo (benches/startup.sh makes it with Feast: VIEWS views of 5 features over one Parquet
file, a SQLite online store, `feast apply`'d) is read as a user's would be.
"""

import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import grpc
from feast.protos.feast.registry import RegistryServer_pb2, RegistryServer_pb2_grpc

larder, repo, views, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lookup(port):
    body = json.dumps({"features": [f"view{views - 1}:f0"], "entities": {"driver_id": [1]}})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", body.encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=1) as r:
        return r.status == 200 and json.loads(r.read())["metadata"]["feature_names"]


def list_views(port):
    # Until the port accepts, a plain connect (gRPC's channel would back off for a second).
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = RegistryServer_pb2_grpc.RegistryServerStub(ch)
        r = stub.ListFeatureViews(RegistryServer_pb2.ListFeatureViewsRequest(
            project="startup_bench", allow_cache=True), timeout=1)
        return len(r.feature_views) == views


def measure(command, probe):
    port = free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen([larder, "-c", repo, command, "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if probe(port):
                    return (time.perf_counter() - t0) * 1000
            except Exception:
                pass
            if p.poll() is not None:
                raise SystemExit(f"larder {command} exited with {p.returncode}")
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"larder {command} did not answer within 30 s")
            time.sleep(0.002)
    finally:
        p.terminate()
        p.wait()


def probe_alone(command, probe):
    """The probe's own time against a server that is already up (what it adds to the
    start-up figure: the client's connect and call)."""
    port = free_port()
    p = subprocess.Popen([larder, "-c", repo, command, "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        measure_until = time.perf_counter() + 30
        while time.perf_counter() < measure_until:
            try:
                if probe(port):
                    break
            except Exception:
                time.sleep(0.01)
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            assert probe(port)
            ms.append((time.perf_counter() - t0) * 1000)
        return statistics.median(ms)
    finally:
        p.terminate()
        p.wait()


for command, probe in [("serve", lookup), ("serve-registry", list_views)]:
    ms = [measure(command, probe) for _ in range(runs)]
    print(f"{command:15s} first answer after {statistics.median(ms):7.1f} ms (median of {runs}; "
          f"runs: {' '.join(f'{m:.1f}' for m in ms)}); the probe alone, server up: "
          f"{probe_alone(command, probe):.1f} ms")
