"""Grading a class: the host-side pieces that decide whether a batch may run, and how."""
