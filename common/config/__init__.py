"""The config machinery both ends share: YAML line map, substitution, durations, problems,
base models."""
