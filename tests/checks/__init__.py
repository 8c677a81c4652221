"""Tests of graders/checks."""
