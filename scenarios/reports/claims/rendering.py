"""Markdown from claim records: docs/claims.md's layout, every number formatted from a record or computed, none typed.

``render(report)`` prints the verdict table, what the seeds can resolve, which claims
share runs, where the numbers come from, and one section per claim.
"""

from __future__ import annotations

import math

from scenarios.reports.claims.records import (
    LEVEL,
    Claim,
    Comparison,
    Report,
    Shared,
    Table,
    format_p,
    upper_failure_rate,
)
from scenarios.reports.stats import Estimate, t_quantile


def cell_text(cell) -> str:
    if cell is None:
        return "—"
    if isinstance(cell, Estimate):
        return cell.format()
    if isinstance(cell, Comparison):
        return cell.value_text()
    return str(cell)


def table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(cell_text(c) for c in row) + " |" for row in t.rows]
    return lines + ([""] + [t.caption] if t.caption else [])


def comparisons(cs: tuple[Comparison, ...]) -> list[str]:
    lines = ["| comparison | measure | estimate [95% interval] | seeds | p | Holm-adjusted p | reading |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {c.subject} | {c.measure} | {c.value_text()} | {c.estimate.n} | {format_p(c.estimate.p_value)} | "
              f"{format_p(c.p_adjusted)} | {c.reading()} |" for c in cs]
    return lines


def claim(c: Claim) -> list[str]:
    out = ["", f"## {c.title}", "", f"The paper: *{c.words}*", "", f"Verdict: **{c.verdict}**. {c.outcome}".rstrip(),
           "", "Rests on:", ""]
    for b in c.basis:
        words = [f"{len(b.runs)} reported runs" if b.runs else "no runs"]
        if b.merged:
            words.append(f"identical runs counted once: {', '.join(b.merged)}")
        if b.tuning:
            words.append(f"strongest baseline chosen on the validation scores in `{b.tuning}`")
        out.append(f"- `{b.experiment}` (`{b.command}`): {'; '.join(words)}.")
    for t in c.tables:
        out += [""] + table(t)
    if c.comparisons:
        out += ["", (f"The comparisons the verdict rests on (paired over seeds; p: paired t-test, Holm-adjusted "
                     f"across these {len(c.comparisons)}):"), ""] + comparisons(c.comparisons)
    for part in c.parts:
        out += ["", f"- *{part.words}*: **{part.verdict}**. {part.outcome} Rule: {part.rule}"]
    if c.findings or c.finding_notes:
        out += ["", "Findings beside the claim (not its verdict)" + (
            f"; the paired comparisons are Holm-adjusted across these {len(c.findings)}, a family of their own:"
            if c.findings else ":")]
        if c.findings:
            out += [""] + comparisons(c.findings)
        if c.finding_notes:
            out += [""] + [f"- {n}" for n in c.finding_notes]
    out += ["", f"Rule: {c.rule}"]
    for note in c.notes:
        out += ["", note]
    return out


def provenance_section(report: Report) -> list[str]:
    """The provenance problems accepted with --accept-provenance, before any number."""
    if not report.accepted:
        return []
    return ["", "## Provenance accepted", "",
            "These results cannot be rebuilt exactly from a commit; `stalesim claims` was told to accept them "
            "(`--accept-provenance`), so read their numbers as from the tree described, not from a commit:", ""] + \
        [f"- {p}." for p in report.accepted]


def seeds_section(report: Report) -> list[str]:
    """What the seeds can and cannot resolve, from the t quantiles and the records."""
    n, planned = report.seeds, report.planned_seeds
    if n < 2:
        return []
    width = t_quantile(n - 1) / math.sqrt(n)
    judged = [c for claim_ in report.claims for c in claim_.comparisons]
    resolved = sum(c.sign() != 0 for c in judged)
    per = ", ".join(f"`{s.name}` {len(s.seeds)}" for s in report.sources if s.seeds)
    lines = ["", f"## What {n} seeds can resolve", "",
             f"Reported seeds per experiment: {per}. The fewest in an experiment a verdict rests on is {n}:", "",
             (f"A comparison paired over {n} seeds has a 95% interval of ± {width:.2f} standard "
              f"deviations of the per-seed differences (the t quantile {t_quantile(n - 1):.3f} for {n - 1} degrees "
              f"of freedom over √{n}).")]
    if planned > n:
        later = t_quantile(planned - 1) / math.sqrt(planned)
        lines[-1] += (f" With {planned} seeds, as `fmnist` and the studies have, it is ± {later:.2f}, "
                      f"{width / later:.1f}x narrower at the same spread.")
    lines.append("")
    lines.append(f"- Resolved: {resolved} of the {len(judged)} comparisons the verdicts rest on have an interval "
                 f"clear of 0 and a Holm-adjusted p below {LEVEL}; large effects that repeat in every seed (a "
                 f"steadier method, a much smaller spread) are what {n} seeds can show.")
    lines.append("- Not resolved: differences no larger than the seed-to-seed spread (small final-accuracy gaps "
                 "between tuned methods); a *not resolved* reading says the intervals cannot tell, not "
                 "that there is no effect.")
    lines.append(f"- Convergence: a configuration that converged in {n} of {n} seeds may still fail in up to "
                 f"{upper_failure_rate(n):.0%} of seeds (one-sided 95% bound)"
                 + (f"; after {planned} of {planned}, up to {upper_failure_rate(planned):.0%}" if planned > n else "")
                 + ". \"Converges in every seed\" is a statement about these seeds only.")
    return lines


def shared_section(shared: tuple[Shared, ...]) -> list[str]:
    if not shared:
        return []
    lines = ["", "## Which claims share runs", ""]
    for s in shared:
        differ = ", ".join(f"`{f}`" for f in s.config_differences) or "no field"
        largest = "" if s.largest_final_difference is None else \
            f"; final accuracies differ by at most {100 * s.largest_final_difference:.2f} points"
        lines.append(f"- `{s.second}` and `{s.first}`: {s.common} runs in common (same algorithm, base and seed); "
                     f"run keys identical in {s.same_key}; configurations differ in {differ}; the same learning "
                     f"rates in {s.same_tuned}, the same simulated trace in {s.same_trace}; bit-identical histories "
                     f"in {s.same_history} (JAX {', '.join(s.jax[0])} for `{s.first}`, {', '.join(s.jax[1])} for "
                     f"`{s.second}`{largest}).")
    same = [s for s in shared if s.same_configuration]
    if same:
        names = [f"`{same[0].first}`"] + [f"`{s.second}`" for s in same]
        lines += ["", (f"So {', '.join(names[:-1])} and {names[-1]} ran the same configuration on the same seeds "
                       "at the same learning rates (a differing field above changed no trace, so it made no "
                       "difference to the timing); they differ only where they were replayed under another JAX "
                       "version. The claims resting on them are one experiment seen several times, not independent "
                       "evidence: an effect of these particular seeds would show in all of them.")]
    return lines


def sources_section(report: Report) -> list[str]:
    lines = ["", "## Where the numbers come from", "", "Each run's result.json holds the full provenance.", ""]
    for s in report.sources:
        if not s.reported:
            lines.append(f"- `{s.name}`: no results")
            continue
        cost = f" + {s.tuning_runs} tuning runs (`{s.tuning_file}`)" if s.tuning_runs else ""
        lines.append(f"- `{s.name}`: {s.reported} reported runs{cost}, seeds {', '.join(map(str, s.seeds))}; "
                     f"{s.updates:,} applied updates replayed in {s.replay_seconds:.0f} s of replay (summed over "
                     f"runs); JAX {', '.join(s.jax)} on {', '.join(s.machines)} CPU." + margins_sentence(s.margins))
    return lines


def margins_sentence(margins) -> str:
    """How many tuned cells won by less than the tuning noise (scenarios/experiments/margins.py)."""
    if not margins:
        return ""
    contested = [m for m in margins if m.runner_up is not None]
    unknown = [m for m in contested if m.noise is None]
    within = [m for m in contested if m.within_noise]
    text = f" Tuning margins: {len(within)} of {len(margins)} tuned cells won within the tuning noise"
    if within:
        text += " (" + "; ".join(f"{m.cell}: {m.margin:.2f} < {m.noise:.2f} points" for m in within) + ")"
    if unknown:
        text += f"; for {len(unknown)} the noise is unknown (one tuning seed)"
    return text + "."


def render(report: Report) -> str:
    out = ["# The GSGM paper's claims, judged by stalesim", "",
           (f"Generated by `stalesim claims` from the results under `{report.root}`; do not edit by hand. "
            "Descriptive numbers are mean ± half-width of the 95% t-interval over the reported seeds (converged "
            "runs). Comparisons are paired over seeds (every algorithm runs on the same seeds and, within a policy, "
            "the same trace): estimate [95% interval], with the paired t-test's p-value and Holm's adjustment across "
            "the comparisons one verdict rests on. Hyperparameters were tuned per cell on separate tuning seeds, "
            "scored on a validation split of the training set, and the strongest baseline is chosen on those "
            "validation scores (see docs/protocol.md). A tuned value won *within the tuning noise* when its mean "
            "validation accuracy beat the runner-up's by less than two standard errors of that difference over the "
            "tuning seeds (each tuning.csv ends with every cell's margin)."), "",
           "| claim | verdict |", "| --- | --- |"]
    out += [f"| {c.title} | **{c.verdict}** |" for c in report.claims]
    out += provenance_section(report)
    out += seeds_section(report) + shared_section(report.shared) + sources_section(report)
    for c in report.claims:
        out += claim(c)
    for s in report.studies:
        out += study(s)
    return "\n".join(out) + "\n"


def study(s) -> list[str]:
    """One ablation or sensitivity study: what it compares, its table, its findings, its sentences."""
    out = ["", f"## {s.title}", "", s.what, ""] + table(s.table)
    if s.findings:
        out += ["", (f"Paired over seeds; Holm-adjusted across these {len(s.findings)} (a family of their own; no "
                     "verdict rests on them):"), ""] + comparisons(s.findings)
    if s.sentences:
        out += [""] + [f"- {line}" for line in s.sentences]
    return out
