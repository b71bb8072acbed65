"""UI helpers shared by app.py and the pages (Streamlit only; the engine is fer_core)."""
