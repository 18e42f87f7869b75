"""benchmarks: stalesim overhead measured as ratios against a plain jitted training loop."""
