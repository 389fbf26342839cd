"""Loopback fakes of the outside world (HubSpot, Slack) for the demo and the tests.

Each fake is a real HTTP server on 127.0.0.1 that speaks the real API's request and response
shapes, auth, paging, limits and error bodies, so the real clients run unchanged against it.
They never listen on anything but loopback.
"""
