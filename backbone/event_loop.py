"""The event loop of the worker and the connectors: uvloop.

Faust and aiohttp spend a large share of their time in the event loop itself: scheduling
callbacks, reading and writing sockets, waking up from other threads. uvloop does that in C
(README, "Benchmark", for what it changed).
"""

from __future__ import annotations

import asyncio

import uvloop


def use_uvloop() -> None:
    """Make asyncio create uvloop loops in this process; call before any loop exists."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
