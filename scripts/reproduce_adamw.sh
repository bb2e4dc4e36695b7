#!/usr/bin/env bash
# Reproduce paper_adamw (all variants x seeds 0,1,2) and draw it. Usage: scripts/reproduce_adamw.sh [cpu]
exec "$(dirname "$0")/reproduce.sh" paper_adamw "$@"
