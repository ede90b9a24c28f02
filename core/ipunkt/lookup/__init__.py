"""Address lookup and routing: who a receiver is, what it accepts, and which channel carries it.

The sources of addresses (the local registry file, the eFormidling Service Registry, or a
plugin's own) answer in the Service Registry's record shape (:mod:`ipunkt.lookup.records`)
behind one interface (:mod:`ipunkt.lookup.source`); :mod:`ipunkt.lookup.routing` picks the
record and the channel as the integrasjonspunkt does. This package's ``__init__`` imports
nothing, so that the plugin contract can re-export the interface without import cycles.
"""
