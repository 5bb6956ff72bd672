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

# Locust headless on HOST, USERS users for DURATION (30s); reports in loadtests/reports/
loadtest HOST USERS DURATION *ARGS:
    mkdir -p loadtests/reports
    name="loadtests/reports/locust-$(date +%Y%m%d-%H%M%S)"; status=0; \
    locust -f loadtests/locustfile.py --headless --only-summary \
        --host {{HOST}} -u {{USERS}} -r $(( ({{USERS}} + 4) / 5 )) -t {{DURATION}} \
        --csv "$name" --html "$name.html" {{ARGS}} || status=$?; \
    echo "reports: $name.html, ${name}_stats.csv and the other CSVs"; exit $status

# Fan-out benchmark on a Herald it starts itself (or --url); --full for the whole matrix
bench *ARGS:
    python loadtests/bench.py {{ARGS}}
