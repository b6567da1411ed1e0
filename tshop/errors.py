"""The one error type the `tshop` command catches: each says what failed and what to do, in one message."""

from __future__ import annotations


class TShopError(RuntimeError):
    """A T-Shop operation failed; the message is for the person who ran it (no traceback needed)."""
