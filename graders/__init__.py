"""HW5 grading: reference solutions, checks, and the course tooling around nbgrader.

Only ``graders.checks`` is meant to be imported by a notebook kernel; everything
else runs on the instructor's side.
"""
