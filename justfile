# Herald's entry points; `just --list` shows them with their descriptions.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes
default:
    @just --list

# Serve Herald on the embedded default (private nats-server, one worker)
serve *ARGS:
    herald serve {{ARGS}}

# Run the whole test suite (starts its own nats-server and Granian servers)
test *ARGS:
    pytest {{ARGS}}

# Lint and type-check: ruff, ruff format --check, mypy strict on service/
lint:
    ruff check service tests loadtests
    ruff format --check service tests loadtests
    mypy

# Format the code in place
fmt:
    ruff format service tests loadtests
    ruff check --fix service tests loadtests

# Lint, then test: what CI runs
check: lint test
