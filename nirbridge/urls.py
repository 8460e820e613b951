"""The one URL redactor: a URL's password hidden wherever a URL may be printed or logged.

    redact_url("redis://:s3cret@broker:6379/0")                 # "redis://:***@broker:6379/0"
    redact_url("https://admin:pw@[::1]:9200", mask="****")       # "https://admin:****@[::1]:9200"

Used by the workers' and the connector's error messages (a broker or cluster URL, `***`) and by
`nirbridge config` (every setting that holds a URL, `****`). Shared by the connector and the workers (the
workers never import the connector, DESIGN.md), like `nirbridge.logs`; it imports no other nirbridge module.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(text: str, mask: str = "***") -> str:
    """`text` with the password of the URL in it replaced by `mask`, the user name, host (as written, IPv6
    brackets kept), path and query unchanged; a URL without a password, or text that does not parse as one,
    comes back as it is."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if password is None:
        return text
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{mask}@{host}"))
