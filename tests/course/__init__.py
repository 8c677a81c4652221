"""Tests of graders/course."""
