# The two commands of this course (see README.md):
#   make demo   set everything up, release HW5 and grade the sample class
#   make test   run the test suite (the slow corpora: make test-slow)
#
# MNIST: point HW5_MNIST_PATH at a local mnist.npz; without it, Keras downloads it once.

VENV ?= .venv
# Kernels run in other folders (and in the sandbox): pass the data path on as absolute.
ifdef HW5_MNIST_PATH
export HW5_MNIST_PATH := $(abspath $(HW5_MNIST_PATH))
endif
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo release test test-slow mutation-score full-agreement clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(PYTHON) -m graders.demo

release: setup
	$(VENV)/bin/hw5-release

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-slow: setup
	$(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf autograded/*/ submitted/ feedback/ gradebook.db grades.csv

# Grade the whole mutant corpus end to end and print the mutation score (slow: ~25 min).
mutation-score: setup
	$(PYTHON) -m pytest -m slow -s -q tests/test_corpus_slow.py

# The corpus under the full budget against its fast verdicts: hours on 2 cores, resumable
# (HOURS=2 stops after two hours; run it again to go on).
full-agreement: setup
	$(PYTHON) tests/corpus/agreement.py $(if $(HOURS),--hours $(HOURS))
