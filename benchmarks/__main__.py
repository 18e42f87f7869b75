"""stalesim's overhead, as ratios taken in one process against a reference.

    python -m benchmarks [--quick] [--out benchmarks/results.json] [--only NAME ...]

Benchmarks (see benchmarks/README.md for the figures measured and what bounds them):

1. replay: applied updates/s of ASGD, DC-ASGD and GSGM replays (10 and 100 workers)
   over the machine's limit: the faster of two plain ``optax.sgd`` trainings on the
   same model, batch size and data, a ``lax.fori_loop`` over every step in one jitted
   call (the scan limit) and one jitted call per step (the loop); both are reported
   (MLP and small CNN, Fashion-MNIST-shaped inputs 28x28x1, batch 64);
2. trace: applied updates/s of ``sim.simulate`` (10, 100, 1,000 workers, network on);
3. seeds: aggregate updates/s of 8 seeds (or 8 configurations: the same batched
   program) replayed in one vmapped call over 8 separate runs;
4. scaling: replay throughput at 1,000 workers over throughput at 10 (MLP);
5. memory: peak resident memory of a 1,000-worker GSGM replay (MLP) over what its
   parameters, snapshots, caches and data need;
6. peer: the CNN's ASGD replay over a plain per-event PyTorch simulation of the same
   run (``benchmarks/torch_peer.py``); optional, skipped (and said so) without PyTorch;
7. resnet: the ResNet-8 replay's updates/s (CIFAR-shaped random images) over its plain loop;
8. cores: the scan limit in one process per core at once, summed, over one process;
9. end_to_end: ``stalesim reproduce fmnist`` in a fresh process from a fresh output
   folder: (applied updates x the limit's seconds per step) / its wall time, and where
   the rest of the time goes (process start, compilation, evaluation, trace
   simulation, report).

Every figure is a median of repeats. Nothing here asserts a time; tests only check
that ``--quick`` runs and writes a well-formed record.

This module is the suite's driver; the figures are measured in ``replays`` and
``machine`` (with ``measure``'s tools), recorded by ``records``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .machine import bench_cores, bench_end_to_end, bench_memory, bench_trace
from .records import HEADER, Record
from .replays import bench_peer, bench_replay, bench_resnet, bench_scaling, bench_seeds

BENCHMARKS = {"trace": bench_trace, "replay": bench_replay, "peer": bench_peer, "resnet": bench_resnet,
              "seeds": bench_seeds, "scaling": bench_scaling, "memory": bench_memory, "cores": bench_cores,
              "end_to_end": bench_end_to_end}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run under a minute")
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON file for the results")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)

    print(HEADER)
    record = Record()
    for name, bench in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        bench(args.quick, record.report)
    out = Path(args.out)
    result = record.write(out, args.quick)
    print(f"\n{len(record.rows)} figures in {result['seconds']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
