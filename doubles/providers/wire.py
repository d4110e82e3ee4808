"""How a provider double puts its answers on the wire: like a real network, in pieces.

A real answer arrives in TCP segments, slowly, or cut off (SPEC §4). By default every
API answer of every double is written in random slices of 1-300 bytes with a few
short pauses between them, so a client that reads only what is buffered sees half
a body in every test, not once in twenty on a loaded machine. The pauses are few
(``pauses`` per answer, wherever they fall) so a 1 MB answer stays cheap.

``Wire.whole()`` writes each answer at once; ``Wire.slow(seconds)`` spreads each
answer over about that long (a slow link or an overloaded gateway).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from aiohttp import web


@dataclass(slots=True)
class Wire:
    min_slice: int = 1
    max_slice: int = 300
    pauses: int = 3  # pauses per answer, one always right after the first slice
    pause: tuple[float, float] = (0.001, 0.004)  # seconds, each
    chunked: float = 0.3  # share of answers sent chunked rather than with Content-Length
    sliced: bool = True
    spread: float = 0.0  # slow(): seconds each answer takes in all

    @classmethod
    def whole(cls) -> Wire:
        return cls(sliced=False)

    @classmethod
    def slow(cls, seconds: float) -> Wire:
        return cls(pauses=8, spread=seconds)

    async def send(
        self, request: web.Request, response: web.Response, rng: random.Random
    ) -> web.StreamResponse:
        """Write ``response`` to the client the way this wire does; the prepared reply."""
        body = response.body
        if not self.sliced or not isinstance(body, bytes | bytearray) or not body:
            return response
        out = web.StreamResponse(status=response.status, reason=response.reason)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                out.headers.add(name, value)
        if response.content_type and "Content-Type" not in out.headers:
            out.content_type = response.content_type
        if rng.random() < self.chunked:
            out.enable_chunked_encoding()
        else:
            out.content_length = len(body)
        await out.prepare(request)
        cuts = self._cuts(len(body), rng)
        inner = cuts[:-1]  # where a pause leaves the client holding part of the body
        pauses = set(inner[:1]) | set(rng.sample(inner, min(max(self.pauses - 1, 0), len(inner))))
        # slow(): the first byte waits too, so even a one-slice answer takes ``spread``.
        each = self.spread / (len(pauses) + 1)
        if self.spread:
            await asyncio.sleep(each)
        at = 0
        for cut in cuts:
            await out.write(bytes(body[at:cut]))
            at = cut
            if cut in pauses:
                await asyncio.sleep(each if self.spread else rng.uniform(*self.pause))
        await out.write_eof()
        return out

    def _cuts(self, size: int, rng: random.Random) -> list[int]:
        cuts, at = [], 0
        if size > 1:  # never all in one piece, however small the answer
            at = rng.randint(self.min_slice, min(self.max_slice, size - 1))
            cuts.append(at)
        while at < size:
            at = min(size, at + rng.randint(self.min_slice, self.max_slice))
            cuts.append(at)
        return cuts
