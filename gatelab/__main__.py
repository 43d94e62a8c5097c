from gatelab.core.cli import main

raise SystemExit(main())
