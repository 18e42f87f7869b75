"""Figures for papers, from saved results: every one as PNG and PDF, with a caption file beside it.

An experiment's report (``report_figures``) draws

- ``accuracy_vs_time``: accuracy against simulated time, mean over seeds with a 95% band,
  one panel per (axis value, base optimizer);
- ``staleness_histograms``: the staleness of applied gradients under each server policy,
  on shared bins and a shared axis, log scale;
- ``stability``: each algorithm's accuracy std over the second half of training, with 95%
  interval bars.

A sweep's report (``sweep_figures``) draws

- ``stability_vs_staleness``: stability and final accuracy against the staleness each
  setting produced, colour per algorithm, marker per cluster shape;
- ``time_to_target``: simulated time to the target accuracy, censored runs marked;
- ``staleness_by_shape``: staleness histograms per cluster shape;
- ``stability_region`` (sweeps over ``workers`` and a learning rate): per algorithm, the
  fraction of seeds that converged at each number of workers and learning rate.

Styles (sizes, fonts, colours) come from ``scenarios.reports.style``; names from the registry.
No figure carries a title naming the command that made it: what a figure shows is in its
caption file (``NAME.txt``).
"""

from scenarios.reports.plots.common import (
    BASE_LABELS,
    BASE_ORDER,
    FIELD_LABELS,
    LR_FIELDS,
    base_label,
    field_label,
)
from scenarios.reports.plots.region import stability_region
from scenarios.reports.plots.run_figures import (
    _curve,
    accuracy_vs_time,
    report_figures,
    stability_bars,
)
from scenarios.reports.plots.staleness import staleness_histograms
from scenarios.reports.plots.sweeps import (
    stability_vs_staleness,
    sweep_figures,
    time_to_target_figure,
)

__all__ = [
    "BASE_LABELS", "BASE_ORDER", "FIELD_LABELS", "LR_FIELDS", "accuracy_vs_time", "base_label", "field_label",
    "report_figures", "stability_bars", "stability_region", "stability_vs_staleness", "staleness_histograms",
    "sweep_figures", "time_to_target_figure",
]
