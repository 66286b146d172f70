"""Framework integrations: two lines in a user's script record a run with trainspect.

``from trainspect.integrations.lightning import TrainspectLogger`` (extra ``lightning``) and
``from trainspect.integrations.transformers import TrainspectCallback`` (extra ``transformers``).
Each module imports its framework; this package imports none, so ``import trainspect`` stays
numpy + h5py. Integrations write runs through the recorder only (import-linter contract).
"""
