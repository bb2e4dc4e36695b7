#!/usr/bin/env bash
# Reproduce moslora_commonsense (all variants x seeds 0,1,2) and draw it. Usage: [JOBS=N] scripts/reproduce_moslora.sh [cpu] [OVERRIDE ...]
exec "$(dirname "$0")/reproduce.sh" moslora_commonsense "$@"
