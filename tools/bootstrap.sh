#!/usr/bin/env bash
# Prepares a development environment from a fresh clone, idempotently:
#   1. checks the tools the integration tests need: a JDK 17+ (`java`), Maven (`mvn`), and Go
#      (`go`, which builds the Toxiproxy server of the network-fault tests, once);
#   2. creates the virtualenv ($VENV, default .venv) with $PYTHON (default python3);
#   3. installs kengine's build requirements, dependencies and `test` extra, as listed in
#      pyproject.toml, so that `pip install --no-build-isolation -e '.[test]'` needs nothing more.
# `make setup` runs this; `make test` runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

fail() { echo "error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || fail "'$PYTHON' not found: install Python 3.10 or newer"
command -v java >/dev/null || fail "'java' not found: the integration tests run real Kafka brokers; \
install a JDK 17+ (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"
java_version=$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -n1)
java_major=${java_version%%.*}
[[ $java_major == 1 ]] && java_major=$(echo "$java_version" | cut -d. -f2)
[[ -n $java_major && $java_major -ge 17 ]] || fail "java is version '$java_version'; Kafka 4 \
needs Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || fail "'mvn' not found: Maven resolves the Kafka jars; install it \
(Debian/Ubuntu: apt-get install maven)"
command -v go >/dev/null || fail "'go' not found: the network-fault tests build the Toxiproxy \
server from its Go module (once, into ~/.cache/kengine); install Go 1.22 or newer and put it on PATH"

[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
py=$VENV/bin/python
"$py" -m pip install -q --upgrade pip
"$py" -c 'import tomllib' 2>/dev/null || "$py" -m pip install -q tomli

mapfile -t requirements < <("$py" - <<'PY'
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)
wanted = (project["build-system"]["requires"] + project["project"]["dependencies"]
          + project["project"]["optional-dependencies"]["test"])
print("\n".join(wanted))
PY
)
"$py" -m pip install -q "${requirements[@]}"
echo "bootstrap: $VENV ready ($("$py" --version), java $java_version, $(mvn -v 2>/dev/null | head -n1 | sed 's/\x1b\[[0-9;]*m//g'), $(go version))"
