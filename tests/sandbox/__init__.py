"""Tests of graders/sandbox."""
