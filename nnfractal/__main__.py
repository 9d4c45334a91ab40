from nnfractal.cli.start import console_main

raise SystemExit(console_main())
