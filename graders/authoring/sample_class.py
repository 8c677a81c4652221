"""The sample class that the main job grades: three submissions with known grades."""

from __future__ import annotations

from graders.authoring.mock_submissions import SOLUTION, MockSubmission, edited

#: Part B's solution cells (TODO 1-6) and Part A's autograded answer cells.
CODE_SOLUTIONS = ("todo1", "todo2", "todo3", "todo4", "todo5", "todo6", "answer_1_1", "answer_3")
#: Manually graded answers: the reference fills them with the reference answers.
WRITTEN_ANSWERS = (
    "answer_q1",
    "answer_q2",
    "answer_q3",
    "answer_q4",
    "answer_1_2",
    "answer_1_3",
    "answer_2_1",
    "answer_2_2",
)

REFERENCE = MockSubmission(
    name="reference",
    intent="The source notebooks' own solutions: every autograded point.",
    cells={grade_id: SOLUTION for grade_id in CODE_SOLUTIONS + WRITTEN_ANSWERS},
    default_points="full",
)

UNTOUCHED_RELEASE = MockSubmission(
    name="untouched-release",
    intent="The release exactly as handed out: no autograded point.",
    default_points=0,
)

PARTLY_CORRECT = MockSubmission(
    name="partly-correct",
    intent=(
        "TODO 1-4 right; TODO 5's second convolution has 32 filters; TODO 6 not attempted; "
        "Part A: a wrong letter for 1.1, Problem 3 right."
    ),
    cells={
        "todo1": SOLUTION,
        "todo2": SOLUTION,
        "todo3": SOLUTION,
        "todo4": SOLUTION,
        "todo5": edited("layers.Conv2D(64,", "layers.Conv2D(32,"),
        "answer_1_1": 'answer_1_1 = "D"',
        "answer_3": SOLUTION,
    },
    expected={
        "test_todo5_architecture": 0,
        "test_todo6_model": 0,
        "test_todo6_training": 0,
        "test_answer_1_1": 0,
    },
    default_points="full",
)

SAMPLE_CLASS = (REFERENCE, UNTOUCHED_RELEASE, PARTLY_CORRECT)
