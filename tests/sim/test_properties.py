"""Property-based: any valid cluster spec and policy yields a valid trace."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import APPLY, PULL, PUSH, ClusterSpec, ComputeModel, FailureModel, network, simulate

positive = st.floats(min_value=0.01, max_value=10.0, allow_nan=False)
small = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)


@st.composite
def specs(draw):
    n = draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["constant", "exponential", "lognormal", "replay"]))
    if kind == "replay":
        compute = ComputeModel("replay", durations=tuple(draw(st.lists(positive, min_size=1, max_size=5))))
    else:
        compute = ComputeModel(kind, draw(positive), draw(st.floats(0.0, 1.5)))
    speeds = tuple(draw(st.lists(positive, min_size=n, max_size=n))) if draw(st.booleans()) else ()
    net = network(draw(small), draw(st.sampled_from([0.0, 1e6])), draw(st.sampled_from([0.0, 4e5])), draw(small))
    policy = draw(st.sampled_from(["fifo", "whitelist-wait", "whitelist-queue", "barrier", "buffered:1",
                                   "buffered:3"]))
    failures = FailureModel()
    if policy != "barrier" and draw(st.booleans()):
        failures = FailureModel(draw(st.floats(1.0, 20.0)), draw(small))
    spec = ClusterSpec(num_workers=n, compute=compute, speeds=speeds, push=net, pull=net,
                       service_time=draw(st.sampled_from([0.0, 0.05])), failures=failures)
    return spec, policy


@settings(max_examples=60, deadline=None)
@given(specs(), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_any_valid_spec_gives_a_valid_trace(spec_policy, updates, seed):
    spec, policy = spec_policy
    trace = simulate(spec, policy, updates, seed)
    trace.validate()
    assert np.all(np.diff(trace.time) >= 0)
    assert np.all(trace.staleness >= 0)
    counts = np.bincount(trace.applied_worker, minlength=spec.num_workers)
    assert counts.sum() == updates == trace.num_updates
    # every applied gradient was pushed before, every push follows a pull of its worker
    pushed = set()
    pulled = np.zeros(spec.num_workers, bool)
    for k, w, s in zip(trace.kind, trace.worker, trace.slot):
        if k == PULL:
            pulled[w] = True
        elif k == PUSH:
            assert pulled[w]
            pushed.add(int(s))
        else:
            assert int(s) in pushed
            pushed.discard(int(s))
    assert trace == simulate(spec, policy, updates, seed)
