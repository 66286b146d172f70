"""Record specs: one class per kind of recorded data (see ``base.Record``), listed in ``registry``."""
