"""A bare aiohttp server that echoes JSON: the baseline the end-to-end benchmark compares with."""

from __future__ import annotations

import sys

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/", echo)
    app.router.add_get("/", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
