#!/usr/bin/env bash
# Reproduce paper_fig3 (all variants x seeds 0,1,2) and draw it. Usage: [JOBS=N] scripts/reproduce_fig3.sh [cpu] [OVERRIDE ...]
exec "$(dirname "$0")/reproduce.sh" paper_fig3 "$@"
