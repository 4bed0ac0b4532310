"""The skill's package: the entry points in scripts/ are thin; everything they do lives here
(docs/architecture.md).

Importing it turns byte-code writing back on for the process: the package's own modules are then
compiled once into its __pycache__ folders instead of on every call where PYTHONDONTWRITEBYTECODE
is set (about 20 ms of each call's start-up here). The scripts import no user code, and the
third-party packages they import are cached the same way (store/transport.py bytecode_cache).
"""

import sys

sys.dont_write_bytecode = False
