# Demo Bank hotline — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOTLINE := $(VENV)/bin/hotline
STAMP := $(VENV)/.installed-$(shell sha1sum setup.cfg | cut -c1-12)

CALLER ?= 13800138000
LINE ?= 95000
DIGITS ?= 1
PAUSE ?= 4

.PHONY: help venv deps chroot sandbox sandbox-down db demo run test lint fast e2e faults call sounds clean \
	cluster cluster-down cluster-test

help:
	@echo "make run    - sandbox (Asterisk + PostgreSQL), demo data, hotline serve in the foreground (Ctrl-C stops all)"
	@echo "make test   - lint, fast suite (fake ARI server), end-to-end suite (real Asterisk, SIPp calls), fault matrix and cluster suite"
	@echo "make call CALLER=13800138000 LINE=95000 DIGITS=1  - one real SIP call into the running sandbox"
	@echo "make bench  - capacity, cost and latency against native dialplan (RATES=20,40 STEP_S=15 for a quick run)"
	@echo "make cluster / cluster-down / cluster-test - Kamailio in front of two Asterisk + hotline serve nodes (docs/scaling.md)"

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

deps:
	scripts/sandbox deps

# The fast suite's fake ARI server checks every request against the chroot's Asterisk REST
# declarations, so it needs the chroot as much as the end-to-end suite does.
chroot: deps
	scripts/sandbox chroot

sandbox: venv deps
	scripts/sandbox up

sandbox-down:
	scripts/sandbox down

db: venv
	$(HOTLINE) db init

demo: db
	$(HOTLINE) customers import config/demo/customers.csv
	$(HOTLINE) accounts import config/demo/accounts.csv
	$(HOTLINE) accounts import-bills config/demo/bills.csv
	$(HOTLINE) accounts import-payees config/demo/payees.csv
# The demo customers' phone-banking PINs (sandbox only): one `customers set-pin` each, from stdin.
	tail -n +2 config/demo/pins.csv | while IFS=, read -r customer pin; do \
	    echo "$$pin" | $(HOTLINE) customers set-pin "$$customer" || exit 1; done
	$(HOTLINE) menus publish agi_app/flows/demo/bank.yaml -m "demo bank menus"

run: venv deps
	scripts/run

lint: venv
	$(VENV)/bin/ruff check agi_app tests bench scripts/record-ari-fixtures scripts/render-asterisk-config scripts/make-sounds
	$(VENV)/bin/mypy agi_app bench tests/support/sipp.py tests/e2e/faults/matrix.py tests/support/dtmf_pcap.py tests/support/speech_pcap.py tests/support/softphone.py tests/support/agents.py scripts/render-asterisk-config
	$(VENV)/bin/lint-imports --no-cache --no-logo

fast: venv chroot
	scripts/sandbox check-declarations
	$(VENV)/bin/pytest tests/fast -q -n 4

e2e: venv chroot
	$(VENV)/bin/pytest tests/e2e -q --ignore=tests/e2e/faults --durations=20

# The fault matrix (issue 13): real calls under faults, one FAULT line per case (placed, completed,
# journeys, callers in silence, cut). Hears the callers through a raw socket on lo: needs root.
faults: venv chroot
	$(VENV)/bin/pytest tests/e2e/faults -q -s

test: lint fast e2e faults cluster-test

call: venv
	scripts/call "$(CALLER)" "$(LINE)" "$(DIGITS)" "$(PAUSE)"

# Beyond one server, on this machine (README "Cluster"): Kamailio on 127.0.0.1:5060 in front of two
# Asterisk nodes, a `hotline serve` each, one PostgreSQL. In the background until `make cluster-down`;
# `make call` goes through Kamailio meanwhile. Not beside `make run`: both take port 5060.
cluster: venv chroot
	scripts/cluster up

cluster-down:
	scripts/cluster down

# The cluster suite (~3 min): brings the cluster up and down itself, under the sandbox's lock.
cluster-test: venv chroot
	flock /tmp/hotline-asterisk.lock $(VENV)/bin/pytest tests/cluster -q

# Capacity and cost against native dialplan (bench/README.md): ~10 min at these defaults, alone on
# the machine; it takes the sandbox's Asterisk lock itself while it calls. A quick look:
# make bench RATES=20,40 STEP_S=15
RATES ?= 20,40,60,80,100,120
STEP_S ?= 20
.PHONY: bench
bench: venv chroot
	$(PY) -m bench.run --rates "$(RATES)" --step-s "$(STEP_S)"

sounds: venv
	scripts/make-sounds

clean: sandbox-down
	rm -rf .run
