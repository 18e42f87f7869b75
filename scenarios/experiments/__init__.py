"""The experiment pipeline: configuration, named experiments, tuning, carrying out runs, and their results."""
