# spotter: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/speech_commands
WAKEWORDS ?= ../shared/data/wakewords

.PHONY: install install-runtime test train train-computer train-jarvis bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# runtime only: what a Raspberry Pi needs
install-runtime: $(BIN)/python
	$(BIN)/pip install -q -e .

# runtime + training + tests
install: $(BIN)/python
	$(BIN)/pip install -q -e ".[train,test]"

test: install
	$(BIN)/python -m pytest -q

# reproduces models/kws.tflite (and its report files) from $(DATA); about an hour on 2 cores
train: install
	$(BIN)/spotter train --data $(DATA) --architecture ds-cnn --unknown-weight 3 --hard-negatives 0 --no-tune --output models/kws.tflite

train-computer: install
	$(BIN)/spotter train --data $(WAKEWORDS) --labels computer --negatives $(DATA) --epochs 40 --unknown-weight 3 \
		--output models/computer.tflite

train-jarvis: install
	$(BIN)/spotter train --data $(WAKEWORDS) --labels jarvis --negatives $(DATA) --epochs 40 --unknown-weight 3 \
		--output models/jarvis.tflite

bench: install-runtime
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench.py --model models/computer.tflite --recording demo/computer.wav

# the main job without a microphone: the default model on the shipped demo recording
demo: install-runtime
	$(BIN)/spotter listen --input demo/keywords.wav --quiet

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
