import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # tests send nothing off this machine
