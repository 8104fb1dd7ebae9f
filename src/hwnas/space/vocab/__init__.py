"""The arch vocabulary of the built-in spaces: op and block names, how to parse them, the
structure facts of a graph arch.

Torch-free and free of space logic, so the spaces, the PyTorch modules that build their
networks and the hardware models that cost them (features, lookup tables) all import the
names from here rather than from each other: no import cycles.
"""
