"""One module per symptom, each with a ``SPEC`` (``advisor/spec.py``); the order they run in is
``advisor/registry.py``."""
