# Shared by scripts/test, scripts/demo and scripts/bench: a virtual environment
# with amas-otel installed, a Prometheus server unpacked from Debian's package, and
# the PostgreSQL and Redis binaries the tests start their throwaway servers from.

amas_venv() {  # amas_venv EXTRAS [CONSTRAINTS]
  # Without CONSTRAINTS: the newest releases pyproject.toml allows (upgraded whenever it changes);
  # with a constraints file (constraints/oldest.txt): exactly those releases.
  local venv="${AMAS_VENV:-.venv}" extras="$1" constraints="${2:-}" stamp pins
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if [ -n "$constraints" ]; then
    pins=(-c "$constraints")
  else
    pins=(--upgrade --upgrade-strategy eager)
  fi
  stamp="$venv/.amas-installed-$(cat pyproject.toml ${constraints:+"$constraints"} | sha1sum | cut -c1-12)-${extras//,/_}"
  if [ ! -f "$stamp" ]; then
    mkdir -p .cache
    # Build-backend chatter goes to a log; it is shown only when the install fails.
    if ! { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip &&
           "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" -e ".[${extras}]"; } >.cache/pip-install.log 2>&1; then
      cat .cache/pip-install.log >&2
      echo "installing amas-otel[${extras}] into $venv failed (log above, also in .cache/pip-install.log)" >&2
      return 1
    fi
    touch "$stamp"
  fi
  AMAS_PY="$venv/bin/python"
  export PATH="$PWD/$venv/bin:$PATH"
}

amas_prometheus() {  # sets PROMETHEUS_BIN and PROMTOOL_BIN
  local cache="${AMAS_CACHE:-$PWD/.cache}/prometheus" deb
  if [ -n "${PROMETHEUS_BIN:-}" ] && [ -x "$PROMETHEUS_BIN" ]; then
    export PROMETHEUS_BIN PROMTOOL_BIN="${PROMTOOL_BIN:-$(dirname "$PROMETHEUS_BIN")/promtool}"
    return
  fi
  if [ ! -x "$cache/usr/bin/prometheus" ]; then
    mkdir -p "$cache/deb"
    if ! (cd "$cache/deb" && apt-get download prometheus >/dev/null 2>&1); then
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "$cache/deb" && apt-get download prometheus >/dev/null)
    fi
    deb=$(ls "$cache"/deb/prometheus_*.deb | head -n 1)
    dpkg -x "$deb" "$cache"
  fi
  export PROMETHEUS_BIN="$cache/usr/bin/prometheus" PROMTOOL_BIN="$cache/usr/bin/promtool"
}

amas_test_services() {  # makes sure the tests can start PostgreSQL and Redis (tests/support/services.py)
  local missing=()
  if [ -z "${AMAS_TEST_POSTGRES_DSN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
     ! command -v initdb >/dev/null; then
    missing+=(postgresql)
  fi
  if [ -z "${AMAS_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
    missing+=(redis-server)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "the tests start their own PostgreSQL and Redis and need Debian's ${missing[*]}:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    echo "or point them at running servers with AMAS_TEST_POSTGRES_DSN / AMAS_TEST_REDIS_URL" >&2
    return 1
  fi
  mkdir -p .cache
  echo "installing ${missing[*]} from Debian's packages (the tests start throwaway servers from them)" >&2
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >.cache/apt-install.log 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >.cache/apt-install.log 2>&1; then
      cat .cache/apt-install.log >&2
      echo "apt-get install ${missing[*]} failed (log above, also in .cache/apt-install.log)" >&2
      return 1
    fi
  fi
}

amas_collector() {  # sets AMAS_OTELCOL_BIN: amas-otelcol built from collector/builder-config.yaml (cached)
  if [ -n "${AMAS_OTELCOL_BIN:-}" ] && [ -x "$AMAS_OTELCOL_BIN" ]; then
    export AMAS_OTELCOL_BIN
    return
  fi
  # Go's own archive installs to /usr/local/go, which a non-login shell may not have on PATH.
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  # Builds are CPU heavy; -p=1 keeps the first (cold) build's memory small on a shared machine.
  AMAS_OTELCOL_BIN=$(GOFLAGS="${GOFLAGS:--p=1}" "$AMAS_PY" -m amas_otel.collector build) || return
  export AMAS_OTELCOL_BIN
}
