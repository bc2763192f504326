#!/usr/bin/env bash
# Quick start: install what is missing, build, and run berthd with its defaults
# (data-root /var/lib/berth, socket unix:///var/run/berth.sock, config
# /etc/berth/daemon.json) — none of which clash with an installed Docker.
# Extra arguments go to berthd, e.g. `scripts/run.sh --debug`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec node dist/src/cmd/berthd.js "$@"
