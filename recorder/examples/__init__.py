"""Example training scripts that use the trainspect Recorder (torch is imported inside them only)."""
