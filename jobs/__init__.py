"""Ray job entrypoints, run as `ray job submit -- python -m jobs.<name>`."""
