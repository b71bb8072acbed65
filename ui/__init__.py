"""UI helpers shared by app.py and the pages (Streamlit only; the engine is fer_core).

NOTE: the WebRTC stack is imported here, before anything can load TensorFlow: importing
aiortc's `pylibsrtp` after TensorFlow 2.21 crashes the process (segmentation fault), which
would take the server down for a user who analysed a photo before opening the webcam page.
Every page imports `ui`, so this runs first in every session.
"""

import streamlit_webrtc  # noqa: F401  (import order matters, see above)
