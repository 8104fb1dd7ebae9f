"""The ground floor: errors, config base, registries, metric names, constraints, Pareto math.

Nothing here imports torch or any layer above: the CLI validates a config, lists plugins and
reads a study without loading a model library.
"""
