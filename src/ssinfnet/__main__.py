from ssinfnet.cli import main

raise SystemExit(main())
