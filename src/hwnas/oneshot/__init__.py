"""One-shot and differentiable search: a supernet trained once, architecture weights learned
against a resource loss, and derived archs handed to the search loop as proposals.

This layer sits under the search loop and over estimators, cost models, spaces and data: the
loop gives it a :class:`~hwnas.oneshot.kit.SupernetKit` (data, space, costs, a directory for
checkpoints) and it gives back ordinary archs of the space.
"""
