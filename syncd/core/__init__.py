"""Pure domain core: canonical model and sync logic, standard library only."""

from __future__ import annotations
