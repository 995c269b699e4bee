"""talkinghead: one portrait photo and one speech recording in, a talking-head video out."""

__version__ = "0.1.0"
