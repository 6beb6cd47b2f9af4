"""Allows ``python -m keras_convlstm``."""

import sys

from keras_convlstm.cli import main

sys.exit(main())
