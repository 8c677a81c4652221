# The two commands of this course (see README.md):
#   make demo   set everything up, release HW5 and grade the sample class
#   make test   run the test suite (the slow corpora: make test-slow)
#
# MNIST: `make setup MNIST=/path/to/mnist.npz` (or HW5_MNIST_PATH=...) records where it is;
# hw5-autograde finds it on the host (graders/grading/data.py) and never lets a kernel download.

VENV ?= .venv
# The interpreter that builds the venv (checked against pyproject's requires-python first).
PYTHON3 ?= python3
# Kernels run in other folders (and in the sandbox): pass the data path on as absolute.
ifdef HW5_MNIST_PATH
export HW5_MNIST_PATH := $(abspath $(HW5_MNIST_PATH))
endif
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup system-packages demo release test test-fast test-slow mutation-score full-agreement clean

setup: $(VENV)/.installed system-packages
	$(if $(MNIST),$(PYTHON) -m graders.grading.data record $(abspath $(MNIST)))
	$(if $(HW5_MNIST_PATH),$(PYTHON) -m graders.grading.data record $(HW5_MNIST_PATH))

# The grading sandbox needs bubblewrap: installed here when this is root with apt-get;
# otherwise say what to install (hw5-autograde refuses to grade without it).
system-packages:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing bubblewrap (the grading sandbox)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else \
	    echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)," \
	         "or grade with hw5-autograde --no-sandbox"; \
	  fi; }

# requirements.lock pins every package for Python 3.10-3.13; regenerate it after editing
# pyproject.toml's dependencies with:
#   uv pip compile pyproject.toml --extra course --extra test --universal --python-version 3.10 -o requirements.lock
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON3) graders/python_check.py
	$(PYTHON3) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --constraint requirements.lock -e '.[course,test]'
	touch $@

demo: setup
	$(PYTHON) -m graders.demo

release: setup
	$(VENV)/bin/hw5-release

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The inner loop: no slow corpora, no TensorFlow autograde end to end, no toy class batch.
test-fast: setup
	$(PYTHON) -m pytest -m 'not slow and not e2e and not batch' $(PYTEST_ARGS)

test-slow: setup
	$(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf autograded/*/ submitted/ feedback/ gradebook.db grades.csv

# Grade the whole mutant corpus end to end and print the mutation score (slow: ~25 min).
mutation-score: setup
	$(PYTHON) -m pytest -m slow -s -q tests/corpus/test_corpus_slow.py

# The corpus under the full budget against its fast verdicts: hours on 2 cores, resumable
# (HOURS=2 stops after two hours; run it again to go on).
full-agreement: setup
	$(PYTHON) tests/corpus/agreement.py $(if $(HOURS),--hours $(HOURS))
