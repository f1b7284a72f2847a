"""jointly: privacy computing for parties that will not hand over their data.

Each party runs a node that keeps its raw data and keys; joint jobs exchange
only protected protocol messages over mutually authenticated channels.
"""

__version__ = "0.1.0"
