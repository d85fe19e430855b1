"""The one exception type qrl raises for bad input, so the CLI can print it without a traceback."""

from __future__ import annotations


class QRLError(ValueError):
    """A problem with user input or configuration, with a message that says how to fix it.

    Messages follow "expected ...; got ...; try ..." where that shape fits.
    """
