"""The WebRTC (ICE server) configuration of the Live webcam page.

Offline by default: with `{"iceServers": []}` streamlit-webrtc contacts no STUN server and
fetches no TURN credentials, so the page starts without a network stall and works on the same
machine or LAN. A remote deployment behind NAT needs STUN/TURN servers; they come from, in order:
  1. `st.secrets["ice_servers"]` (`.streamlit/secrets.toml`, a list of tables), or
  2. the `FER_ICE_SERVERS` environment variable (JSON: a list of servers, or {"iceServers": [...]}).
Each server is {"urls": "turn:host:3478" or [...], "username": ..., "credential": ...}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

# What the Live webcam page asks the browser's camera for (the benchmark's pass-through page too).
MEDIA_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}
ICE_SERVERS_ENV = "FER_ICE_SERVERS"
ICE_SERVERS_SECRET = "ice_servers"
_SERVER_KEYS = {"urls", "username", "credential"}


def parse_ice_servers(value: Any, source: str) -> list[dict[str, Any]]:
    """Validate ICE servers given as a list of mappings (or {"iceServers": [...]});
    ValueError names the source and what is wrong."""
    if isinstance(value, Mapping) and "iceServers" in value:
        value = value["iceServers"]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{source}: expected a list of ICE servers, got {type(value).__name__}")
    servers = []
    for number, server in enumerate(value, start=1):
        if not isinstance(server, Mapping) or "urls" not in server:
            raise ValueError(f"{source}: ICE server {number} needs a 'urls' entry (e.g. \"turn:host:3478\")")
        unknown = set(server) - _SERVER_KEYS
        if unknown:
            raise ValueError(f"{source}: ICE server {number} has unknown keys {sorted(unknown)}; allowed: {sorted(_SERVER_KEYS)}")
        urls = server["urls"]
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls or not all(isinstance(url, str) and url.split(":", 1)[0] in ("stun", "stuns", "turn", "turns") for url in urls):
            raise ValueError(f"{source}: ICE server {number} urls must start with stun:, stuns:, turn: or turns:, got {urls}")
        servers.append({key: (urls if key == "urls" else str(item)) for key, item in server.items()})
    return servers


def configured_ice_servers() -> tuple[list[dict[str, Any]], str]:
    """The ICE servers and where they came from ("default" means none: offline/LAN only)."""
    if st.secrets.load_if_toml_exists() and ICE_SERVERS_SECRET in st.secrets:
        raw = st.secrets[ICE_SERVERS_SECRET]
        plain = [dict(server) if isinstance(server, Mapping) else server for server in raw] if isinstance(raw, (list, tuple)) else raw
        return parse_ice_servers(plain, f"st.secrets[{ICE_SERVERS_SECRET!r}]"), "secrets"
    text = os.environ.get(ICE_SERVERS_ENV, "").strip()
    if text:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{ICE_SERVERS_ENV} is not valid JSON ({error})") from None
        return parse_ice_servers(value, ICE_SERVERS_ENV), "environment"
    return [], "default"


def rtc_configuration() -> dict[str, Any]:
    """The `rtc_configuration` for `webrtc_streamer`; shows an error and stays offline when
    the configured servers are invalid."""
    try:
        servers, _ = configured_ice_servers()
    except ValueError as error:
        st.error(f"The ICE server configuration is invalid, so only local connections will work: {error}")
        servers = []
    return {"iceServers": servers}
