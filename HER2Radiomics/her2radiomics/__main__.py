from her2radiomics.cli import main

raise SystemExit(main())
