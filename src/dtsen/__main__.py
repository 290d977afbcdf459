from dtsen.cli import main

raise SystemExit(main())
