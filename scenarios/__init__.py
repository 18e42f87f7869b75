"""scenarios: data, models, named experiments, metrics, reports and the CLI."""
