from jaxinit.cli import main

raise SystemExit(main())
