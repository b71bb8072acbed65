"""Test-only start-up hook for the Streamlit server of tests/test_browser_webcam.py.

Put on the server's PYTHONPATH together with FER_TEST_LOOPBACK_ICE=1. aioice (under aiortc)
deliberately leaves 127.0.0.1 out of its ICE host candidates, so in a network namespace that
has only `lo` (or with Chromium limited to loopback) the WebRTC connection never comes up.
This makes aioice offer the loopback address, nothing else. Never used by the app itself.
"""

import os

if os.environ.get("FER_TEST_LOOPBACK_ICE") == "1":
    import aioice.ice

    def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = _loopback_only

if os.environ.get("FER_TEST_WEBRTC_DEBUG") == "1":  # verbose ICE/WebRTC logs when a test fails
    import logging

    logging.basicConfig(level=logging.INFO)
    for name in ("aioice", "aiortc", "streamlit_webrtc"):
        logging.getLogger(name).setLevel(logging.DEBUG)
