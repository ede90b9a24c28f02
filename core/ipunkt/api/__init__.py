"""The aiohttp handlers of the Next Move API and of ``/manage``: parse, call, shape the answer."""
