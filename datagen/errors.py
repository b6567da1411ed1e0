"""What the generator refuses. Every refusal happens before the day it concerns is written (most before any
day is), says why and what to do instead, and makes `tshop-datagen` exit 1 without a traceback."""

from __future__ import annotations


class Refused(RuntimeError):
    """A request the generator will not carry out; nothing of what it refused was written."""


class DayAlreadyLoaded(Refused):
    """A requested day is already in RAW (or earlier than the last loaded day); nothing was written."""


class DaysOutOfRange(Refused):
    """The requested days cannot be simulated: past the calendar's end, before the earliest day the
    simulator models, or not over yet."""


class ArgumentsDiffer(Refused):
    """An argument differs from what the shop being continued was made with, so it would be ignored."""


class RecordUnreadable(Refused):
    """RAW holds simulated days but neither the generator's record of the shop nor a shop it could
    derive one from; or the landing zone's generator state cannot be read."""


class DayInterrupted(Refused):
    """The landing zone holds some files of a day whose run stopped while writing them: that day must be
    generated again (the same files, byte for byte) before any other, whose ids would collide with them."""
