import os

# Quiet TensorFlow's C++ start-up chatter and pin the backend before anything imports keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
