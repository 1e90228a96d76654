import sys

from otel_monitor.cli import main

sys.exit(main())
