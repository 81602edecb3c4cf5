"""fcbench: benchmark and profile quasi-real-time inference on on-demand serverless GPUs.

Importing this package is cheap and has no side effects: the in-instance server imports it too.
"""

__version__ = "0.1.0"
