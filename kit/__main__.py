"""`python -m kit` runs the benchkit command line."""

from kit.cli import main

raise SystemExit(main())
