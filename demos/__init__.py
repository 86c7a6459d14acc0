"""Runnable demos of optimem: `python -m demos.needle_in_haystack` (the project's main job)."""
