"""GETs each path given from Feast's REST registry server and from Larder's, and prints both
answers (status, JSON body) as JSON: [{"path", "feast", "larder"}].

Usage: registry_rest.py FEAST_PORT LARDER_PORT PATH...
"""
import json
import sys
import urllib.error
import urllib.request


def fetch(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}") as r:
            return {"status": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


feast_port, larder_port = sys.argv[1], sys.argv[2]
print(json.dumps([
    {"path": p, "feast": fetch(feast_port, p), "larder": fetch(larder_port, p)} for p in sys.argv[3:]
]))
