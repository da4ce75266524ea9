"""The AMI links of a site, one per named PBX (``pbx`` entries of the config)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from .errors import AmiAuthError
from .link import AmiLink, LinkState


class AmiPool:
    """A registry of AmiLink keyed by PBX name. It starts, watches and closes them together."""

    def __init__(self, links: list[AmiLink] | None = None) -> None:
        self._links: dict[str, AmiLink] = {}
        for link in links or ():
            self.add(link)

    def add(self, link: AmiLink) -> AmiLink:
        if link.name in self._links:
            raise ValueError(f"two AMI links named {link.name!r}: PBX names must be unique")
        self._links[link.name] = link
        return link

    def __getitem__(self, pbx: str) -> AmiLink:
        try:
            return self._links[pbx]
        except KeyError:
            raise KeyError(
                f"no AMI link for PBX {pbx!r} (known: {', '.join(self._links) or 'none'})"
            ) from None

    def get(self, pbx: str) -> AmiLink | None:
        return self._links.get(pbx)

    def __iter__(self) -> Iterator[AmiLink]:
        return iter(self._links.values())

    def __len__(self) -> int:
        return len(self._links)

    @property
    def names(self) -> list[str]:
        return list(self._links)

    def states(self) -> dict[str, LinkState]:
        return {name: link.state for name, link in self._links.items()}

    def start(self) -> None:
        for link in self._links.values():
            link.start()

    async def run(self) -> None:
        """Run every link until closed; the first AmiAuthError ends the pool (``ctiserver run`` exits
        non-zero). Unreachable PBXes never end it: their links keep retrying."""
        try:
            async with asyncio.TaskGroup() as tg:
                for link in self._links.values():
                    tg.create_task(link.run())
        except* AmiAuthError as group:
            raise group.exceptions[0] from None

    async def wait_up(self, timeout: float | None = None) -> None:
        """Wait until every link is UP (raises AmiAuthError at once if one is refused)."""
        try:
            async with asyncio.timeout(timeout):
                async with asyncio.TaskGroup() as tg:
                    for link in self._links.values():
                        tg.create_task(link.wait_up())
        except* AmiAuthError as group:
            raise group.exceptions[0] from None

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self._links.values()))
