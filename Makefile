# The two commands: `make run` and `make test`. Everything they need is created here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
# Test processes: each gets its own DynamoDB Local; the e2e stack runs on one of them.
TEST_WORKERS ?= 3

.PHONY: run test bench build lint unit integration e2e clean

$(BIN)/.installed: pyproject.toml layers/payments-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# Replaced by phonenumberslite, which installs the same module: not both in one venv.
	$(BIN)/pip uninstall --quiet --yes phonenumbers 2>/dev/null || true
	$(BIN)/pip install --quiet -e '.[dev]'
	@# python-alipay-sdk without its pyOpenSSL, which botocore imports at every start
	@# wherever it is installed (docs/cold-start.md); a venv made before keeps none either.
	$(BIN)/pip install --quiet --no-deps -r layers/payments-nodeps.txt
	$(BIN)/pip uninstall --quiet --yes pyopenssl 2>/dev/null || true
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# SAM CLI pins its own boto3: it lives in a virtualenv of its own.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	touch $@

deps: $(BIN)/.installed node_modules/.installed

run: deps
	$(BIN)/membership-local up

test: deps $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI=$(CURDIR)/$(SAM_VENV)/bin/sam $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

unit: deps
	$(BIN)/pytest tests/unit

integration: deps
	$(BIN)/pytest tests/integration

e2e: deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/e2e

# BENCH_ARGS: e.g. --callgrind (CPU instruction counts of the cold starts), --strict.
bench: deps $(SAM_VENV)/.installed
	SAM_CLI=$(CURDIR)/$(SAM_VENV)/bin/sam $(BIN)/python -m bench $(BENCH_ARGS)

# `sam build` (README, Deploy) with the functions' Python, 3.12, first on PATH.
build: deps $(SAM_VENV)/.installed
	@py="$$($(BIN)/python -m membership_local.build python)" && \
		PATH="$$(dirname "$$py"):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build

lint: deps
	$(BIN)/ruff check functions infra tests bench

clean:
	rm -rf $(VENV) $(SAM_VENV) node_modules .membership-local
