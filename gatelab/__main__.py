from gatelab.core.harness.cli import main

raise SystemExit(main())
