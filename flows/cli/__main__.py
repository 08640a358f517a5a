"""`python -m flows.cli`: the same as the `wap` command."""

from flows.cli import main

main()
