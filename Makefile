# Jalapeño: every target a newcomer needs. Targets that need Python make .venv first.
#   make demo          the int8 code-completion model on the RTL core, checked against golden
#   make test          the whole suite (pytest-xdist, Verilator); SIM=icarus for Icarus
# See README.md for the rest.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
SIM     ?= verilator
PRESET  ?= default
BENCH   ?= matrix_unit
WAVES   ?= 0
FILTER  ?=
JOBS    ?= 2

include toolchain.env
export YOSYS NEXTPNR_ICE40 NEXTPNR_ECP5 ICEPACK ECPPACK SBY SMTBMC WITNESS AMARANTH_USE_YOSYS

.PHONY: setup test sim verilog synth bitstream formal bench lint demo demo-unit clean

$(VENV)/.installed: pyproject.toml
	@echo "setup  creating $(VENV) from pyproject.toml"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

ifeq ($(SIM),verilator)
test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup
else
test: setup
	JALAPENO_SIM=$(SIM) $(PY) -m pytest -n $(JOBS) --dist loadgroup -m cocotb
endif

sim: setup
	$(PY) -m sim.runner $(BENCH) --sim $(SIM) --preset $(PRESET) $(if $(filter 1,$(WAVES)),--waves) $(if $(FILTER),--filter '$(FILTER)')

verilog: setup
	$(PY) -m sim.verilog

synth: setup
	$(PY) -m fpga.synth

BOARD   ?= icebreaker
ARRAY   ?=

bitstream: setup
	$(PY) -m fpga.build --board $(BOARD) $(if $(ARRAY),--array $(ARRAY))

formal: setup
	$(PY) -m verification.formal

bench: setup
	$(PY) -m sim.bench --sim $(SIM)

lint: setup
	$(VENV)/bin/ruff check .

PROMPT  ?= class Stack:\n    def __init__(self):\n        self.
TOKENS  ?= 32

demo: setup
	$(PY) -m jalapeno.cli complete "$$(printf '$(PROMPT)')" --backend rtl --preset $(PRESET) --tokens $(TOKENS) --check

demo-unit: setup
	$(PY) -m sim.demo --sim $(SIM) --preset $(PRESET)

clean:
	rm -rf build .pytest_cache
