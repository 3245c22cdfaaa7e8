"""Writes a Feast repo with randomized pandas-mode on-demand feature views for oracle tests, and
the requests to send to `feast serve` and `larder serve`.

Usage: odfv_case.py DIR SEED   (prints the requests as JSON: [{"features": [...], "entities": {...}}])

Two feature views on one entity (one with missing values in every column, one covering only
some drivers) and a request source; each on-demand view's outputs are random expressions from
the native engine's subset (arithmetic, comparisons, logic, where/fillna/clip, numpy math,
casts, string concatenation) over source features, request data and the join key.
"""

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

HEAD = r'''
from datetime import timedelta

import numpy as np
import pandas as pd

from feast import Entity, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])

stats = FeatureView(
    name="stats",
    entities=[driver],
    ttl=timedelta(days=0),
    schema=[
        Field(name="a", dtype=Int64),
        Field(name="b", dtype=Float64),
        Field(name="c", dtype=Float32),
        Field(name="s", dtype=String),
        Field(name="flag", dtype=Bool),
    ],
    source=FileSource(path="data/stats.parquet", timestamp_field="ts"),
)

more = FeatureView(
    name="more",
    entities=[driver],
    ttl=timedelta(days=0),
    schema=[Field(name="x", dtype=Int64), Field(name="y", dtype=Float64)],
    source=FileSource(path="data/more.parquet", timestamp_field="ts"),
)

req = RequestSource(name="req", schema=[Field(name="r1", dtype=Int64), Field(name="r2", dtype=Float64)])
'''

ODFV = r'''

@on_demand_feature_view(
    sources=[__SOURCES__],
    schema=[__SCHEMA__],
)
def __NAME__(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
__BODY__
    return df
'''

# Numeric columns: (expression, may be missing)
NUM_COLS = {
    "stats": [('inputs["a"]', True), ('inputs["b"]', True), ('inputs["c"]', True),
              ('inputs["stats__b"]', True)],
    "more": [('inputs["x"]', True), ('inputs["y"]', True), ("inputs.more__x", True)],
    "req": [('inputs["r1"]', False), ('inputs["r2"]', False)],
}


def combine(*kinds):
    """The kind of an operation's result: a Series if any operand is one, else an ndarray if
    any is one, else a scalar."""
    for k in ("series", "array"):
        if k in kinds:
            return k
    return "scalar"


def num(rng, cols, depth=0):
    """A random numeric expression over `cols`: (text, kind)."""
    if depth > 2 or rng.random() < 0.3:
        if rng.random() < 0.2:
            return repr(rng.choice([2, 3, 0.5, -1.25, 10])), "scalar"
        return rng.choice(cols)[0], "series"
    pick = rng.randrange(13)
    a, ka = num(rng, cols, depth + 1)
    b, kb = num(rng, cols, depth + 1)
    if pick <= 3:
        op = ["+", "-", "*", "/"][pick]
        return f"({a} {op} {b})", combine(ka, kb)
    if pick == 4:
        return f"({a} // {rng.choice(['3', '2.5', '-4'])})", ka
    if pick == 5:
        return f"({a} % {rng.choice(['3', '2.5', '-4'])})", ka
    if pick == 7:
        return f"np.sqrt(np.abs({a}))", ka
    if pick == 9:
        c, kc = cmp(rng, cols, depth + 1)
        if kc == "scalar":
            return f"(-{a})", ka
        return f"np.where({c}, {a}, {b})", "array"
    if pick == 10:
        return f"np.maximum({a}, {b})", combine(ka, kb)
    # Methods: on Series only.
    if ka != "series":
        a, ka = rng.choice(cols)[0], "series"
    if pick == 6:
        return f"{a}.fillna({rng.choice(['0', '-1.5', '7'])})", ka
    if pick == 8:
        lo, hi = rng.choice(["-1", "0", "0.25"]), rng.choice(["5", "100.5"])
        return f"{a}.clip(lower={lo}, upper={hi})", ka
    if pick == 11:
        return f"{a}.round({rng.choice([0, 1, 2])})", ka
    c, kc = cmp(rng, cols, depth + 1)
    if kc == "scalar":
        return f"(-{a})", ka
    return f"{a}.where({c}, {rng.choice(['0', 'np.nan', '-2.5'])})", ka


def cmp(rng, cols, depth=0):
    """A random boolean expression: (text, kind)."""
    a, ka = num(rng, cols, depth + 1)
    b, kb = num(rng, cols, depth + 1)
    op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
    c, k = f"({a} {op} {b})", combine(ka, kb)
    r = rng.random()
    if r < 0.2 and 'inputs["a"]' in [x for x, _ in cols]:
        return f'({c} & inputs["flag"])', "series"
    if r < 0.35 and depth < 2:
        d, kd = cmp(rng, cols, depth + 2)
        return f"({c} | {d})", combine(k, kd)
    if r < 0.45 and k != "scalar":
        return f"(~{c})", k
    return c, k


def column_expr(rng, gen, cols, want=("series", "array")):
    """An expression of a kind in `want` (a scalar assigned to an empty frame gives no rows)."""
    while True:
        e, k = gen(rng, cols)
        if k in want:
            return e


def outputs(rng, cols, has_stats):
    """(name, dtype, expression) of one view's outputs."""
    out = []
    for i in range(rng.randint(1, 3)):
        kind = rng.random()
        if kind < 0.55:
            # `* 1.0`: Feast's apply infers the output type from inputs without missing
            # values, where integer columns stay integers.
            out.append((f"o{i}", "Float64", f"({column_expr(rng, num, cols)}) * 1.0"))
        elif kind < 0.7:
            e = column_expr(rng, num, cols, want=("series",))
            out.append((f"o{i}", "Int64", f'({e}).fillna(0).clip(lower=-1e6, upper=1e6).astype("int64")'))
        elif kind < 0.85 or not has_stats:
            out.append((f"o{i}", "Bool", column_expr(rng, cmp, cols)))
        else:
            out.append((f"o{i}", "String", rng.choice([
                'inputs["s"].fillna("none") + "_x"',
                'inputs["s"] + inputs["s"]',
                '"p:" + inputs["stats__s"]',
            ])))
    return out


def main():
    dir_, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    (dir_ / "data").mkdir(parents=True, exist_ok=True)
    (dir_ / "feature_store.yaml").write_text(
        "project: odfv\nregistry: data/registry.db\nprovider: local\n"
        "online_store: {type: sqlite, path: data/online.db}\n"
        "offline_store: {type: file}\nentity_key_serialization_version: 3\n"
    )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ids = list(range(1, 13))
    nan = lambda p, v: None if rng.random() < p else v  # noqa: E731
    stats = pd.DataFrame({
        "driver_id": ids,
        "ts": [now - timedelta(hours=1)] * len(ids),
        "a": pd.array([nan(0.25, rng.randint(-20, 20)) for _ in ids], dtype="Int64"),
        "b": [nan(0.25, round(rng.uniform(-5, 5), 3)) for _ in ids],
        "c": np.array([rng.choice([0.1, 1.5, -2.25, 3.3, 0.0]) for _ in ids], dtype="float32"),
        "s": [nan(0.3, rng.choice(["u", "vw", "xyz"])) for _ in ids],
        "flag": [rng.random() < 0.5 for _ in ids],
    })
    stats.to_parquet(dir_ / "data/stats.parquet")
    half = [i for i in ids if i % 2 == 0]
    more = pd.DataFrame({
        "driver_id": half,
        "ts": [now - timedelta(hours=1)] * len(half),
        "x": [rng.randint(-9, 9) for _ in half],
        "y": [round(rng.uniform(0, 3), 2) for _ in half],
    })
    more.to_parquet(dir_ / "data/more.parquet")

    defs = HEAD
    requests = []
    for v in range(6):
        sources = ["stats"] if rng.random() < 0.8 else []
        if rng.random() < 0.6 or not sources:
            sources.append("more")
        if rng.random() < 0.7:
            sources.append("req")
        cols = [c for s in sources for c in NUM_COLS[s]]
        outs = outputs(rng, cols, "stats" in sources)
        name = f"odfv_{v}"
        defs += (
            ODFV.replace("__NAME__", name)
            .replace("__SOURCES__", ", ".join(sources))
            .replace("__SCHEMA__", ", ".join(f'Field(name="{n}", dtype={t})' for n, t, _ in outs))
            .replace("__BODY__", "\n".join(f'    df["{n}"] = {e}' for n, _, e in outs))
        )
        rows = rng.sample(ids + [40, 41], 6)
        entities = {"driver_id": rows}
        if "req" in sources:
            entities["r1"] = [rng.randint(-3, 3) for _ in rows]
            entities["r2"] = [rng.choice([0.5, -1.0, 2.75, 0.0]) for _ in rows]
        features = [f"{name}:{n}" for n, _, _ in outs]
        if rng.random() < 0.5:
            features.insert(0, "stats:a")
        requests.append({"features": features, "entities": entities,
                         "full_feature_names": rng.random() < 0.3})
    (dir_ / "definitions.py").write_text(defs)
    print(json.dumps(requests))


if __name__ == "__main__":
    main()
