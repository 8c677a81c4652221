"""Authoring: the reference solutions, the expectations and thresholds derived from them, the release, and mock submissions."""
