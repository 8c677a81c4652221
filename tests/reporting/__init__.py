"""Tests of graders/reporting."""
