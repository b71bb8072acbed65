"""fer_core: the facial-emotion-recognition engine behind the app (no Streamlit in here).

Submodules are imported on use so that `fer_core.classes` and friends stay cheap; TensorFlow
loads only with the modules that need it (zoo, pipeline, training, inference).
"""

from fer_core.classes import CLASSES, NUM_CLASSES

__all__ = ["CLASSES", "NUM_CLASSES"]
