"""Out-of-kernel verification: re-run graded cells on objects rebuilt from plain exports.

The student's kernel only exports data (``graders.checks.kernel_export``); this trusted
package reads it strictly (``export_reader``), rebuilds Keras objects with its own
code (``rebuild``), cross-checks the numbers (``crosscheck``) and re-runs the
trusted test cells with the unchanged ``graders.checks`` (``verifier``).
"""
