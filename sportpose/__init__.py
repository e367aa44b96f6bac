"""sportpose: a distributed experiment platform for sports video pose estimation on Ray."""

__version__ = "0.1.0"
