"""Tests of graders/authoring."""
