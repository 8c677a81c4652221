"""Issue 17's corpus: training points rest on evidence, not on the kernel's word.

Each case is the reference with one change, graded under the fast budget; each must get
exactly the grade its work deserves, with no flag needed for it. The cases:
- a disguised optimizer: a class named SGD that is Adam underneath. Its grade is that of
  the same work with Adam named Adam: TODO 5's optimizer point is lost, TODO 6 (built by
  the student's own builder, trained with updates and history that agree) keeps its own.
"""

from __future__ import annotations

from corpus.mutants import mutant
from graders.authoring.mock_submissions import edited

#: Inside define_model_2_conv, so that the other builders keep Keras's SGD.
_DISGUISED_SGD = '''    class SGD(keras.optimizers.Adam):
        """Adam, under SGD's name and taking SGD's arguments."""

        def __init__(self, learning_rate=0.01, momentum=0.0, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.momentum = momentum

        def get_config(self):
            return {**super().get_config(), "momentum": self.momentum, "nesterov": False}

'''

DISGUISED_OPTIMIZER = mutant(
    "evidence-disguised-optimizer",
    "TODO 5 compiles with a class named SGD that is Adam: 0 for TODO 5's optimizer, and only that.",
    ("test_todo5_optimizer",),
    todo5=edited("    model = keras.Sequential(", _DISGUISED_SGD + "    model = keras.Sequential("),
)

EVIDENCE = (DISGUISED_OPTIMIZER,)
