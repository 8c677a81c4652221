"""Tests of graders/verify."""
