#!/usr/bin/env bash
# Reproduce paper_fig2 (all variants x seeds 0,1,2) and draw it. Usage: [JOBS=N] scripts/reproduce_fig2.sh [cpu] [OVERRIDE ...]
exec "$(dirname "$0")/reproduce.sh" paper_fig2 "$@"
