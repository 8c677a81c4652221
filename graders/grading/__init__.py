"""Grading a class: intake of submissions, execution in the sandbox, verification, and scoring with nbgrader."""
