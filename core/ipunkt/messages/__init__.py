"""The Next Move API's rules: outgoing and incoming messages, statuses, conversations.

No HTTP in here: the handlers in :mod:`ipunkt.api` parse, call these services, and shape the
answers.
"""
