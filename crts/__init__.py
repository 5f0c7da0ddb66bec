"""Learning from the SEN12MS-CR-TS cube: samples, batches, models, training, evaluation, and the ``crts`` command."""

__version__ = "0.1.0"
