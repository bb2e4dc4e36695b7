#!/usr/bin/env bash
# Reproduce paper_scienceqa (all variants x seeds 0,1,2) and draw it. Usage: scripts/reproduce_scienceqa.sh [cpu]
exec "$(dirname "$0")/reproduce.sh" paper_scienceqa "$@"
