"""The workloads: data sets (and their one explicit download), partitions over workers, models, and the problem a configuration trains."""
