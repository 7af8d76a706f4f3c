"""Training: the Lightning module, data module, optimizers and the engine behind ``fakescope train``."""
