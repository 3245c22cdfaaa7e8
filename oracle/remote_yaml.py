"""The repo's feature_store.yaml with `online_store` replaced by `{type: remote, path: URL}`
and/or `offline_store` by `{type: remote, host: 127.0.0.1, port: PORT}`, and, when the
environment has REGISTRY_PORT, `registry` by `{registry_type: remote, path: 127.0.0.1:PORT}`,
written beside it as feature_store_remote.yaml (for the SDK's `fs_yaml_file`)."""

import os
from pathlib import Path


def remote_yaml(repo, url=None, offline_port=None):
    replaced = {}
    registry_port = os.environ.get("REGISTRY_PORT")
    if registry_port:
        replaced["registry:"] = (
            f"registry:\n  registry_type: remote\n  path: 127.0.0.1:{registry_port}"
        )
    if url:
        replaced["online_store:"] = f"online_store:\n  type: remote\n  path: {url}"
    if offline_port:
        replaced["offline_store:"] = (
            f"offline_store:\n  type: remote\n  host: 127.0.0.1\n  port: {offline_port}"
        )
    lines, skip = [], False
    for line in Path(repo, "feature_store.yaml").read_text().splitlines():
        if any(line.startswith(k) for k in replaced):
            skip = True
            continue
        if skip and line.startswith(" "):
            continue
        skip = False
        lines.append(line)
    lines.extend(replaced.values())
    path = Path(repo, "feature_store_remote.yaml")
    path.write_text("\n".join(lines) + "\n")
    return path
