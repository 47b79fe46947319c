from agenthost.cli import main

raise SystemExit(main())
