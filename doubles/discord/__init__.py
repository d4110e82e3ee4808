"""A local fake Discord (REST, gateway, CDN) that the unmodified discord.py logs into.

See ``DiscordDouble`` for the test-facing API.
"""

from .double import DiscordDouble
from .errors import CommandContractError, DiscordHTTPError
from .model import Attachment, Channel, Guild, Interaction, Member, Message, Role, User
from .server import FormRefusal, LoggedRequest

__all__ = [
    "Attachment",
    "Channel",
    "CommandContractError",
    "DiscordDouble",
    "DiscordHTTPError",
    "FormRefusal",
    "Guild",
    "Interaction",
    "LoggedRequest",
    "Member",
    "Message",
    "Role",
    "User",
]
