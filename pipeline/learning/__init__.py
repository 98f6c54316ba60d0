"""The learned judge's learning code: its training data (``corpus``), its network and folder (``model``), the
recogniser-like renderings training reads (``augmentation``), the training loop (``training``), the settings
tuned after it (``tuning``: temperatures, thresholds, rule weights) and its model card (``card``).

Nothing is imported here, so ``pipeline.judges.learned`` can import ``model`` while ``training`` imports the
judge."""
