"""The ML steps of the textcnn pipeline: what runs inside the pods (`python -m textcnn STEP`)."""

import os

# TensorFlow's info lines drown the steps' own messages in each log; set it to 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
