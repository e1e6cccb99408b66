#!/usr/bin/env bash
# Install Azurite (the Azure Blob emulator, npm `azurite`) into the project's cache.
#
# Usage: .ci/install-azurite.sh [PREFIX]
#   PREFIX defaults to $HOME/.cache/slng-bulk/azurite; tests/support/azurite.py looks for
#   PREFIX/node_modules/.bin/azurite-blob. Idempotent: an existing install of the pinned major is
#   left alone. The last line on stdout is the path of azurite-blob (export it as SLNG_AZURITE_BIN
#   or leave it at the default path). Without node/npm, prints why and exits 0: the Azure tests then
#   skip (or fail, if SLNG_REQUIRE_AZURITE=1).
set -euo pipefail

PREFIX="${1:-${HOME}/.cache/slng-bulk/azurite}"
PACKAGE='azurite@3'
BIN="${PREFIX}/node_modules/.bin/azurite-blob"
STAMP="${PREFIX}/.slng-azurite-installed"

log() { echo "install-azurite: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node or npm not found; Azurite not installed, the Azure tests will be skipped."
  exit 0
fi

if [ -x "${BIN}" ] && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${PACKAGE}" ]; then
  log "already installed in ${PREFIX}"
  echo "${BIN}"
  exit 0
fi

mkdir -p "${PREFIX}"
rm -f "${STAMP}"
npm install --prefix "${PREFIX}" --no-audit --no-fund --loglevel=error "${PACKAGE}" >&2
"${BIN}" --help >/dev/null
printf '%s' "${PACKAGE}" > "${STAMP}"
log "installed in ${PREFIX}"
echo "${BIN}"
