"""The child process of the ``cores`` figure: the MLP's scan limit, timed when the parent says go.

    python -m benchmarks.cores STEPS

It compiles, prints ``ready``, waits for a line on stdin (so that every child starts
timing together), then prints the scan limit's steps/s (median of 3) as one JSON number.
"""

from __future__ import annotations

import json
import sys

from .measure import reference_rates, reference_steps, setup


def main(argv=None) -> int:
    steps = int((sys.argv[1:] if argv is None else argv)[0])
    model, loss_fn, batch_fn, data, _ = setup("mlp", 10)
    refs = reference_steps(model, loss_fn, batch_fn, data)
    reference_rates(model, loss_fn, batch_fn, data, 100, 1, refs)  # compile
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts timing together
    print(json.dumps(reference_rates(model, loss_fn, batch_fn, data, steps, 3, refs)["scan"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
