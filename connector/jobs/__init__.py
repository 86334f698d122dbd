"""Background work: the worker pool for training runs and the scheduler for retraining."""
