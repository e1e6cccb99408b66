#!/usr/bin/env bash
# Install LocalStack (S3 only, no Docker) into its own Python 3.13 virtual environment.
#
# Usage: .ci/install-localstack.sh [VENV_DIR]
#   VENV_DIR defaults to $HOME/.cache/slng-bulk/localstack-venv (where tests/support/localstack.py
#   looks for it). Idempotent: a venv that already has the pinned packages is left alone.
# On success, the last line printed on stdout is the path of the venv's python; export it as
# SLNG_LOCALSTACK_PYTHON or leave the venv at the default path.
# If no Python 3.13 is found, prints why and exits 0 without creating anything: the LocalStack
# tests then skip (or fail, if SLNG_REQUIRE_LOCALSTACK=1).
set -euo pipefail

VENV_DIR="${1:-${HOME}/.cache/slng-bulk/localstack-venv}"
# Pins: LocalStack 2026.3.0 breaks with cbor2>=6, pyOpenSSL!=24.3.0 and cryptography>=45.
PACKAGES=(
  'localstack-core[base-runtime]==2026.3.0'
  'cbor2<6'
  'pyopenssl==24.3.0'
  'cryptography<45'
  'service_identity'
)
STAMP_CONTENT="${PACKAGES[*]}"
STAMP="${VENV_DIR}/.slng-localstack-installed"

log() { echo "install-localstack: $*" >&2; }

is_py313() {
  [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' >/dev/null 2>&1
}

find_python313() {
  local cand root=""
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null || true)"
  fi
  # pyenv installed but not on PATH (non-interactive shells): look where it keeps its versions.
  root="${root:-${PYENV_ROOT:-${HOME}/.pyenv}}"
  # Newest 3.13.x first.
  for cand in $(ls -d "${root}"/versions/3.13.*/bin/python3 2>/dev/null | sort -rV); do
    if is_py313 "${cand}"; then echo "${cand}"; return 0; fi
  done
  # A pyenv shim named python3.13 may exist without being enabled: check that it really runs.
  if cand="$(command -v python3.13 2>/dev/null)" && is_py313 "${cand}"; then
    echo "${cand}"; return 0
  fi
  return 1
}

VENV_PY="${VENV_DIR}/bin/python"

if [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${STAMP_CONTENT}" ] && is_py313 "${VENV_PY}" \
   && "${VENV_PY}" -c 'import localstack.runtime.main' >/dev/null 2>&1; then
  log "already installed in ${VENV_DIR}"
  echo "${VENV_PY}"
  exit 0
fi

if ! PY313="$(find_python313)"; then
  log "no Python 3.13 found (looked in \$(pyenv root)/versions/3.13.*/bin/python3, \$PYENV_ROOT or ~/.pyenv and for python3.13 on PATH);"
  log "LocalStack not installed, the LocalStack tests will be skipped."
  exit 0
fi
log "using ${PY313}"

if ! is_py313 "${VENV_PY}"; then
  log "creating venv ${VENV_DIR}"
  rm -rf "${VENV_DIR}"
  mkdir -p "$(dirname "${VENV_DIR}")"
  "${PY313}" -m venv "${VENV_DIR}"
fi

rm -f "${STAMP}"
"${VENV_PY}" -m pip install --quiet --upgrade pip >&2
"${VENV_PY}" -m pip install --quiet "${PACKAGES[@]}" >&2
"${VENV_PY}" -c 'import localstack.runtime.main' >&2
printf '%s' "${STAMP_CONTENT}" > "${STAMP}"
log "installed in ${VENV_DIR}"
echo "${VENV_PY}"
