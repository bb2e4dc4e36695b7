#!/usr/bin/env bash
# Reproduce paper_adamw (all variants x seeds 0,1,2) and draw it. Usage: [JOBS=N] scripts/reproduce_adamw.sh [cpu] [OVERRIDE ...]
exec "$(dirname "$0")/reproduce.sh" paper_adamw "$@"
