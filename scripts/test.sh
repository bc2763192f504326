#!/usr/bin/env bash
# Install what is missing (including the reference dockerd, registry, skopeo,
# crun and busybox the tests compare against), build, lint, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
npm run lint --silent
npm test
