"""Tests of graders/grading."""
