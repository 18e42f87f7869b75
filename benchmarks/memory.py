"""The child process of the ``memory`` figure: a GSGM replay's peak resident memory, in a fresh process.

    python -m benchmarks.memory WORKERS UPDATES

Prints one JSON object: peak RSS once imported, before and after the replay, and what
the replay needs (the parameters' bytes, the data's bytes, the store's rows and kind).
"""

from __future__ import annotations

import json
import sys

import jax

from algorithms import Problem, replay
from algorithms.schedule import schedule_for

from .measure import no_eval, peak_rss, rule, setup, trace


def main(argv=None) -> int:
    workers, updates = (int(a) for a in (sys.argv[1:] if argv is None else argv)[:2])
    base = peak_rss()  # after the imports: they are not the replay's
    model, loss_fn, batch_fn, data, _ = setup("mlp", workers)
    whitelist = trace(workers, "whitelist-wait", updates)
    params = model.init(jax.random.PRNGKey(0))
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
    data_bytes = sum(x.size * x.dtype.itemsize for x in data)
    schedule = schedule_for(whitelist, params, "auto")
    before = peak_rss()
    replay(schedule, rule("gsgm"), Problem(loss_fn, batch_fn, no_eval, data, params), eval_every=10**9, mode="scan")
    print(json.dumps({"base": base, "before": before, "peak": peak_rss(), "param_bytes": param_bytes,
                      "data_bytes": data_bytes, "rows": schedule.num_rows, "storage": schedule.storage}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
