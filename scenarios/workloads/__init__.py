"""The workloads: data sets (and their one explicit download), partitions over nodes, models, and the problem a configuration trains."""
