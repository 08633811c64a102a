# spotter: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/speech_commands
WAKEWORDS ?= ../shared/data/wakewords
ESC10 ?= ../shared/data/esc10
STREAMS := runs/streams
TTS := runs/tts
TTS_HELD := runs/tts-heldback
PHRASES := runs/phrases
EVENTS := runs/events

.PHONY: install install-runtime test train train-events train-computer train-jarvis eval eval-phrases events-data bench bench-train demo pi-check clean

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

# reproduces models/kws.tflite (and its report files) from $(DATA): three tc-resnet8 networks averaged into one file,
# two trained with synthesised phrases as extra other speech (seeds 0 and 1) and one without (seed 1), 80 epochs
# each (about 30 minutes a member with two in parallel: `make -j2 train`; 10 GB of memory each), then thresholds
# sharing 0.5 false alarms/h set on the validation streams (built below)
KWS_RECIPE := --architecture tc-resnet8 --shift-ms 400 --keyword-inside --unknown-weight 3 --hard-negatives 0 --no-tune --epochs 80
KWS_MEMBERS := runs/kws-members/tts0/kws.tflite runs/kws-members/tts1/kws.tflite runs/kws-members/plain1/kws.tflite
runs/kws-members/tts%/kws.tflite: $(TTS)/README.md | install
	$(BIN)/spotter train --data $(DATA) --labels yes,no,up,down,left,right,on,off,stop,go --negatives $(TTS) \
		--partial-keywords 0.2 $(KWS_RECIPE) --seed $* --output $@
runs/kws-members/plain%/kws.tflite: | install
	$(BIN)/spotter train --data $(DATA) $(KWS_RECIPE) --seed $* --output $@
train: install $(foreach c,clean 10db neg-clean neg-10db,$(STREAMS)/val-$(c).wav) $(KWS_MEMBERS)
	$(BIN)/spotter train --ensemble $(KWS_MEMBERS) --output models/kws.tflite
	$(BIN)/spotter eval run -m models/kws.tflite $(foreach c,clean 10db neg-clean neg-10db,$(STREAMS)/val-$(c).wav) \
		--hop-ms 100 --smoothing-ms 400 --write-thresholds --report runs/eval-tune

# reproduces models/events.tflite: two networks of 40 epochs each (seeds 0 and 1) on the scenes of folds 1-3 (2 s
# window, windows holding an event every 150 ms), averaged into one file, then its figures on the fold-4 scenes; it
# keeps the thresholds suggested from held-back windows (those at 0.5 false alarms/h halve segment F1). About 12 GB
# of memory at each run's peak, so the members train one after the other.
EVENT_SEEDS := 0 1
train-events: install $(EVENTS)/README.md
	for s in $(EVENT_SEEDS); do $(BIN)/spotter train --data $(EVENTS) --architecture tc-resnet8 --window-ms 2000 \
		--epochs 40 --no-tune --event-stride-ms 150 --seed $$s --output runs/events-members/seed$$s/events.tflite \
		|| exit 1; done
	$(BIN)/spotter train --ensemble $(foreach s,$(EVENT_SEEDS),runs/events-members/seed$(s)/events.tflite) \
		--output models/events.tflite
	$(BIN)/spotter eval run -m models/events.tflite $(EVENTS)/validation-*.wav --report runs/eval-events

train-computer: install $(TTS)/README.md
	$(BIN)/spotter train --data $(WAKEWORDS) --labels computer --negatives $(DATA) --negatives $(TTS) --epochs 40 --unknown-weight 3 \
		--output models/computer.tflite

train-jarvis: install $(TTS)/README.md
	$(BIN)/spotter train --data $(WAKEWORDS) --labels jarvis --negatives $(DATA) --negatives $(TTS) --epochs 40 --unknown-weight 3 \
		--output models/jarvis.tflite

# the default model's streaming table (models/kws.md): seeded streams of validation and test speakers, then
# recall, false alarms per hour and latency per condition, with DET curves, under runs/
$(STREAMS)/val-clean.wav: ; $(BIN)/spotter eval build -o $@ --minutes 30 --seed 1
$(STREAMS)/val-10db.wav: ; $(BIN)/spotter eval build -o $@ --minutes 30 --snr 10 --seed 2
$(STREAMS)/val-neg-clean.wav: ; $(BIN)/spotter eval build -o $@ --minutes 60 --negatives --seed 3
$(STREAMS)/val-neg-10db.wav: ; $(BIN)/spotter eval build -o $@ --minutes 60 --negatives --snr 10 --seed 4
$(STREAMS)/test-clean.wav: ; $(BIN)/spotter eval build --split test -o $@ --minutes 30 --seed 11
$(STREAMS)/test-10db.wav: ; $(BIN)/spotter eval build --split test -o $@ --minutes 30 --snr 10 --seed 12
$(STREAMS)/test-neg-clean.wav: ; $(BIN)/spotter eval build --split test -o $@ --minutes 60 --negatives --seed 13
$(STREAMS)/test-neg-10db.wav: ; $(BIN)/spotter eval build --split test -o $@ --minutes 60 --negatives --snr 10 --seed 14

eval: install $(foreach s,val test,$(foreach c,clean 10db neg-clean neg-10db,$(STREAMS)/$(s)-$(c).wav))
	for s in val test; do for c in clean 10db; do \
		$(BIN)/spotter eval run -m models/kws.tflite $(STREAMS)/$$s-$$c.wav $(STREAMS)/$$s-neg-$$c.wav \
			--report runs/eval-$$s-$$c || exit 1; done; done

# synthesised negatives (needs espeak-ng and festival, see README): 31 voices saying train/phrases/negatives.txt, and,
# for evaluation only, the same voices saying train/phrases/heldback.txt (phrases no training run sees)
$(TTS)/README.md: ; $(BIN)/python -m spotter.train.synth -o $(TTS)
$(TTS_HELD)/README.md: ; $(BIN)/python -m spotter.train.synth --phrases train/phrases/heldback.txt --per-voice 100 --seed 7 -o $(TTS_HELD)

# false alarms on speech no training run heard: the held-back synthesised phrases, and streams of held-back takes
# of the other wake words (same crowd-sourced recording style as "computer" and "jarvis"), clean and at 10 dB
$(PHRASES)/%-test-clean.wav: ; $(BIN)/spotter eval build --data $(WAKEWORDS) --keywords $* --split test --minutes 20 --seed 21 -o $@
$(PHRASES)/%-test-10db.wav: ; $(BIN)/spotter eval build --data $(WAKEWORDS) --keywords $* --split test --minutes 20 --snr 10 --noise $(DATA) --seed 22 -o $@
$(PHRASES)/%-test-neg-clean.wav: ; $(BIN)/spotter eval build --data $(WAKEWORDS) --keywords $* --negatives --split test --minutes 60 --seed 23 -o $@
$(PHRASES)/%-test-neg-10db.wav: ; $(BIN)/spotter eval build --data $(WAKEWORDS) --keywords $* --negatives --split test --minutes 60 --snr 10 --noise $(DATA) --seed 24 -o $@

eval-phrases: install $(TTS_HELD)/README.md $(foreach w,computer jarvis,$(foreach c,clean 10db neg-clean neg-10db,$(PHRASES)/$(w)-test-$(c).wav))
	for m in kws computer jarvis; do \
		$(BIN)/spotter eval run -m models/$$m.tflite $(TTS_HELD)/*.wav --report runs/eval-phrases-$$m-tts || exit 1; done
	for w in computer jarvis; do for c in clean 10db; do \
		$(BIN)/spotter eval run -m models/$$w.tflite $(PHRASES)/$$w-test-$$c.wav $(PHRASES)/$$w-test-neg-$$c.wav \
			--report runs/eval-phrases-$$w-$$c || exit 1; done; done

# sound-event scenes for `spotter train --data $(EVENTS)`: ESC-10 clips at random positions and event-to-background
# ratios (0 to 20 dB) over looped Speech Commands background noise, labelled at each event's extent: 36 training
# scenes of folds 1-3 over the training part of the noise (each clip placed about four times, in other company and
# at other levels), and 4 validation scenes of fold 4 over its held-out part, 3 minutes each (about 20 s on 2
# cores); `spotter train --data $(EVENTS)` trains on them (see train-events)
$(EVENTS)/README.md:
	$(BIN)/spotter eval build --events $(ESC10) --folds 1,2,3 --split train --noise $(DATA) --minutes 3 --count 36 \
		--seed 41 -o $(EVENTS)/train.wav
	$(BIN)/spotter eval build --events $(ESC10) --folds 4 --split validation --noise $(DATA) --minutes 3 --count 4 \
		--seed 32 -o $(EVENTS)/validation.wav
	printf '%s\n' "Sound-event scenes built by 'make events-data' from $(ESC10) (ESC-10, K. J. Piczak, CC BY 3.0) over" \
		"the _background_noise_ of $(DATA) (Speech Commands, CC BY 4.0): train-NN from folds 1-3, validation-NN" \
		"from fold 4 over the held-out part of the noise. Labels: <name>.txt (Audacity)." > $@

events-data: install $(EVENTS)/README.md

# the sound-event demo (demo/events.wav, events.txt, events-ATTRIBUTION.md): fold-4 clips over held-out noise
demo/events.wav: ; $(BIN)/python demo/make_events_demo.py

bench: install-runtime
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench.py --model models/computer.tflite --recording demo/computer.wav --no-inputs
	$(BIN)/python bench/bench.py --model models/events.tflite --recording demo/events.wav --no-inputs

# seconds per training epoch by stage, and the waveform-domain augmentation it replaced
bench-train: install
	$(BIN)/python bench/bench_train.py

# the pre-release check of the README's Raspberry Pi install (pi/pi-check.sh; root, network, 30-60 min the first
# time): Debian arm64 and armhf roots under qemu-user, the README's install, both demos compared with x86's
ARCHES ?= arm64 armhf
pi-check: install-runtime
	pi/pi-check.sh $(ARCHES)

# the main job without a microphone: the default model on the shipped demo recording
demo: install-runtime
	$(BIN)/spotter listen --input demo/keywords.wav --quiet

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
