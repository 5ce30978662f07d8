# Shared by scripts/test, scripts/demo and scripts/bench: a virtual environment
# with amas-otel installed, and a Prometheus server unpacked from Debian's package.

amas_venv() {  # amas_venv EXTRAS
  local venv="${AMAS_VENV:-.venv}" extras="$1" stamp
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  stamp="$venv/.amas-installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras//,/_}"
  if [ ! -f "$stamp" ]; then
    mkdir -p .cache
    # Build-backend chatter goes to a log; it is shown only when the install fails.
    if ! { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip &&
           "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"; } >.cache/pip-install.log 2>&1; then
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
