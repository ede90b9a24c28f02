"""The sealing toolkit: keys, ASiC-E, CAdES/XAdES signatures, CMS envelopes, JWS, manifests.

Plain streaming Python with no aiohttp in it, for the core and the channel plugins alike.
The high-level entry points are :func:`ipunkt.package.seal.seal` and
:func:`ipunkt.package.seal.open_package`.
"""
