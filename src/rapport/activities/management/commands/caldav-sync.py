# noqa: N999 - the module name is the command name: ``rapport caldav-sync`` as documented
"""``rapport caldav-sync``: the documented spelling of ``rapport caldav_sync``."""

from rapport.activities.management.commands.caldav_sync import Command

__all__ = ["Command"]
