"""Reporting: feedback for students, grade exports, and the class report."""
