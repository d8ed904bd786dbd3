import sys

from monai_ssl.cli import main

sys.exit(main())
