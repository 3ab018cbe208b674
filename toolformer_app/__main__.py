import sys

from toolformer_app.cli import main

sys.exit(main())
