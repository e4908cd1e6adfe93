from llmfiles.cli import main

raise SystemExit(main())
