"""The coordinator web page under `/ui/`: one static page that calls the coordinator API.

The page holds no data of its own: every timeline, alert or review it shows is fetched with the
coordinator's token and purpose, so the API's checks and audit apply to the page too.
"""

from __future__ import annotations

from importlib.resources import files

import faust
from faust.web import Request, Response, View

PAGE = files("streams.api").joinpath("static/coordinator.html")


def serve_coordinator_page(app: faust.App) -> None:
    """Register `GET /ui/` answering the page."""
    html = PAGE.read_text(encoding="utf-8")

    async def coordinator_page(view: View, _request: Request) -> Response:
        return view.html(
            html, headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}
        )

    app.page("/ui/")(coordinator_page)
